"""``sockerless-backend-lambda``: serve the Lambda backend, or list/delete orphaned functions.

``sockerless-backend-lambda [flags]`` serves the internal API (see ``--help``);
``sockerless-backend-lambda orphans [--delete] [flags]`` lists the functions tagged as
sockerless's that the store does not know, and with ``--delete`` deletes those of this instance.
It opens the store, so run it while the backend is stopped.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from sockerless.backend import BackendRuntime
from sockerless.config import (
    ConfigError,
    add_config_arguments,
    config_sections,
    flags_from_args,
    load_settings,
    resolve_store_path,
)
from sockerless.errors import SockerlessError
from sockerless.store import Store
from sockerless_lambda.backend import LambdaBackend
from sockerless_lambda.config import LambdaConfig
from sockerless_lambda.reconcile import delete_orphans, find_orphans
from sockerless_lambda.state import LambdaState

__all__ = ["main", "orphans_main"]


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["orphans"]:
        return orphans_main(args[1:])
    from sockerless.cli import serve_main

    return serve_main("lambda", args, prog="sockerless-backend-lambda")


def orphans_main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="sockerless-backend-lambda orphans",
        description="List Lambda functions tagged as sockerless's that the store does not know.",
    )
    parser.add_argument("--delete", action="store_true", help="delete the orphans of this instance")
    add_config_arguments(
        parser, config_sections(LambdaBackend.name, LambdaConfig), aliases=LambdaBackend.cli_aliases
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings(
            backend_name=LambdaBackend.name,
            backend_section=LambdaConfig,
            config_file=args.config_file,
            environ=os.environ,
            flags=flags_from_args(args),
        )
    except ConfigError as exc:
        print("configuration error:\n  " + "\n  ".join(exc.problems), file=sys.stderr)
        return 2
    from sockerless.cli import instance_id_for

    store_path = resolve_store_path(settings)
    runtime = BackendRuntime(state_path=store_path, instance_id=instance_id_for(store_path))
    return asyncio.run(_orphans(settings.backend, runtime, delete=args.delete))


async def _orphans(config: LambdaConfig, runtime: BackendRuntime, *, delete: bool) -> int:
    backend = LambdaBackend(config, runtime)
    try:
        await backend.start_clients()
        store = await Store.open(runtime.state_path, state_class=LambdaState)
        try:
            found = await find_orphans(backend.clients, store, config, runtime.instance_id)
        finally:
            await store.close()
        for orphan in found:
            owner = "this instance" if orphan.mine else f"instance {orphan.instance or '?'}"
            if orphan.function_key:
                container = f"shared function of key {orphan.function_key[:12]}"
            else:
                container = f"container {orphan.container_id[:12]} /{orphan.container_name}"
            print(f"{orphan.function_name}\t{container}\t{owner}")
        if delete:
            for name in await delete_orphans(backend.clients, found):
                print(f"deleted {name}")
        elif not found:
            print("no orphaned functions")
    except SockerlessError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await backend.close()
    return 0
