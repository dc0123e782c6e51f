"""The schema of the state database as an append-only list of migrations.

``PRAGMA user_version`` is the version a file is at. A released step is never edited: a change is a
new step, which must work on any data an older version could have written. See docs/store.md.
"""

from __future__ import annotations

from typing import Final

from attrs import frozen

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "Migration"]


@frozen
class Migration:
    """One step of the schema, applied in its own transaction together with its ``user_version``."""

    version: int
    description: str
    statements: tuple[str, ...]


MIGRATIONS: Final[tuple[Migration, ...]] = (
    Migration(
        1,
        "containers, their labels, images",
        (
            """CREATE TABLE containers (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL UNIQUE,
                created TEXT NOT NULL,
                status TEXT NOT NULL,
                image TEXT NOT NULL,
                record TEXT NOT NULL
            )""",
            """CREATE TABLE container_labels (
                container_id TEXT NOT NULL REFERENCES containers(id) ON DELETE CASCADE,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                PRIMARY KEY (container_id, key)
            )""",
            "CREATE INDEX container_labels_by_key_value ON container_labels(key, value)",
            """CREATE TABLE images (
                reference TEXT PRIMARY KEY,
                id TEXT NOT NULL,
                record TEXT NOT NULL
            )""",
        ),
    ),
    Migration(
        2,
        "containers.image_id (the ancestor filter) and images by ID",
        (
            "ALTER TABLE containers ADD COLUMN image_id TEXT NOT NULL DEFAULT ''",
            "UPDATE containers SET image_id = coalesce(json_extract(record, '$.image_id'), '')",
            "CREATE INDEX images_by_id ON images(id)",
        ),
    ),
    Migration(
        3,
        "containers split into spec, state and backend; output in log_entries; images under wire names",
        (
            # What a container was created as, its state, and the backend's own state, apart: a change
            # of state rewrites neither the spec's JSON nor anything derived from it.
            "ALTER TABLE containers ADD COLUMN spec TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE containers ADD COLUMN state TEXT NOT NULL DEFAULT '{}'",
            "ALTER TABLE containers ADD COLUMN backend TEXT NOT NULL DEFAULT 'null'",
            """UPDATE containers SET
                spec = json_object(
                    'config', coalesce(record -> '$.config', json('{}')),
                    'host_config', coalesce(record -> '$.host_config', json('{}'))
                ),
                state = json_object(
                    'exit_code', coalesce(record ->> '$.exit_code', 0),
                    'error', coalesce(record ->> '$.error', ''),
                    'pid', coalesce(record ->> '$.pid', 0),
                    'started_at', record ->> '$.started_at',
                    'finished_at', record ->> '$.finished_at',
                    'restart_count', coalesce(record ->> '$.restart_count', 0)
                ),
                backend = json_remove(
                    coalesce(record -> '$.backend_fields', json('{}')),
                    '$.logs', '$.logs_until_ms', '$.logs_settled'
                )""",
            """CREATE TABLE log_entries (
                container_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                stream INTEGER NOT NULL,
                time_ns INTEGER NOT NULL,
                data BLOB NOT NULL,
                PRIMARY KEY (container_id, seq)
            ) WITHOUT ROWID""",
            """CREATE TABLE log_removals (
                container_id TEXT PRIMARY KEY,
                expires_at REAL NOT NULL
            ) WITHOUT ROWID""",
            # The output v2 kept in the record ([[timestamp_ms, text], ...], stdout), in order from seq 1.
            """INSERT INTO log_entries (container_id, seq, stream, time_ns, data)
                SELECT containers.id, entry.key + 1, 1,
                    CAST(entry.value ->> '$[0]' AS INTEGER) * 1000000, CAST(entry.value ->> '$[1]' AS BLOB)
                FROM containers, json_each(containers.record, '$.backend_fields.logs') AS entry
                WHERE json_type(containers.record, '$.backend_fields.logs') = 'array'""",
            "ALTER TABLE containers DROP COLUMN record",
            # Images keep one JSON document, now under the names the project's converter gives them.
            """UPDATE images SET record = json_object(
                'Reference', reference,
                'Id', id,
                'Digest', coalesce(record ->> '$.digest', ''),
                'Created', record ->> '$.created',
                'Config', coalesce(record -> '$.config', json('{}')),
                'Extra', coalesce(record -> '$.extra', json('{}'))
            )""",
        ),
    ),
    Migration(
        4,
        "removed_containers (a removed container's last exit and the cloud cleanup still owed) "
        "instead of log_removals",
        (
            """CREATE TABLE removed_containers (
                id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                exit_code INTEGER NOT NULL,
                error TEXT NOT NULL,
                tty INTEGER NOT NULL,
                expires_at REAL NOT NULL,
                cleanup TEXT NOT NULL
            ) WITHOUT ROWID""",
            # log_removals knew only when a removed container's output expires: its name and exit were
            # kept in memory and are lost. It answers by ID, with the exit status 255 and an error that
            # says why (the project's "unknown" exit); its function was deleted before the row was written.
            """INSERT INTO removed_containers (id, name, exit_code, error, tty, expires_at, cleanup)
                SELECT container_id, '', 255,
                    'the exit status of this container was not kept (it was removed by an older sockerless)',
                    0, expires_at, ''
                FROM log_removals""",
            "DROP TABLE log_removals",
        ),
    ),
    Migration(
        5,
        "backend_objects (documents a backend keeps beside its containers, by kind and key)",
        (
            """CREATE TABLE backend_objects (
                kind TEXT NOT NULL,
                key TEXT NOT NULL,
                document TEXT NOT NULL,
                PRIMARY KEY (kind, key)
            ) WITHOUT ROWID""",
        ),
    ),
)

SCHEMA_VERSION: Final = MIGRATIONS[-1].version
