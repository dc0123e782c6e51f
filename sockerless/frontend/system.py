"""``/_ping``, ``/version``, ``/info`` and ``/system/df``: who the daemon is, in the shapes the clients
decode.

Only a frontend can answer these: the ping headers and the version are the frontend's (the Docker API
it speaks), ``/info`` is the backend's information completed with every field the CLI decodes into
a non-nil value, and ``/system/df`` is Docker's disk-usage report made of the backend's image and
container lists. (``/auth`` is a plain pass-through.)
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

import attrs
from aiohttp import web

from sockerless import __version__
from sockerless.frontend.context import frontend_of
from sockerless.frontend.versions import API_VERSION, MIN_API_VERSION
from sockerless.http.responses import json_response
from sockerless.models import VersionInfo
from sockerless.wire import unstructure

__all__ = ["PING_HEADERS", "disk_usage", "info", "ping", "version", "version_body"]

#: The parts of ``/system/df`` a ``type`` query parameter may ask for (all of them without one).
_DISK_USAGE_TYPES = ("image", "container", "volume", "build-cache")

#: Docker's own ping headers. The CLI negotiates with ``API-Version``; without it it assumes 1.24.
PING_HEADERS = {
    "API-Version": API_VERSION,
    "Ostype": "linux",
    "Docker-Experimental": "false",
    "Builder-Version": "2",
    "Swarm": "inactive",
    "Cache-Control": "no-cache, no-store, must-revalidate",
    "Pragma": "no-cache",
}


async def ping(request: web.Request) -> web.StreamResponse:
    body = b"" if request.method == "HEAD" else b"OK"
    return web.Response(body=body, headers={**PING_HEADERS, "Content-Type": "text/plain; charset=utf-8"})


def version_body(backend_name: str, backend_version: str, versions: VersionInfo) -> dict[str, Any]:
    """Docker's ``/version``: the engine (this frontend) and the backend as components."""
    details = {
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "Os": versions.os,
        "Arch": versions.arch,
        "GitCommit": versions.git_commit,
        "BuildTime": versions.build_time,
        "Experimental": "false",
        "KernelVersion": "",
    }
    return {
        "Platform": {"Name": f"sockerless ({backend_name})"},
        "Components": [
            {"Name": "Engine", "Version": __version__, "Details": details},
            {"Name": f"sockerless-backend-{backend_name}", "Version": backend_version, "Details": {}},
        ],
        "Version": __version__,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": versions.git_commit,
        "GoVersion": "",
        "Os": versions.os,
        "Arch": versions.arch,
        "KernelVersion": "",
        "Experimental": False,
        "BuildTime": versions.build_time,
    }


async def version(request: web.Request) -> web.StreamResponse:
    frontend = frontend_of(request)
    return json_response(
        version_body(frontend.backend_name, frontend.report.version, frontend.backend_version)
    )


async def info(request: web.Request) -> web.StreamResponse:
    """The backend's info, plus every field the CLI decodes into a non-nil value."""
    frontend = frontend_of(request)
    backend = unstructure(await frontend.client.info())
    body: dict[str, Any] = {
        "ID": "",
        "Name": f"sockerless-{frontend.backend_name}",
        "ServerVersion": __version__,
        "Containers": 0,
        "ContainersRunning": 0,
        "ContainersPaused": 0,
        "ContainersStopped": 0,
        "Images": 0,
        "Driver": frontend.backend_name,
        "DriverStatus": [],
        "Plugins": {"Volume": [], "Network": [], "Authorization": None, "Log": ["json-file"]},
        "MemoryLimit": True,
        "SwapLimit": False,
        "KernelMemoryTCP": False,
        "CpuCfsPeriod": False,
        "CpuCfsQuota": False,
        "CPUShares": False,
        "CPUSet": False,
        "PidsLimit": False,
        "IPv4Forwarding": False,
        "BridgeNfIptables": False,
        "BridgeNfIp6tables": False,
        "Debug": False,
        "NFd": 0,
        "OomKillDisable": False,
        "NGoroutines": 0,
        "SystemTime": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "LoggingDriver": "json-file",
        "CgroupDriver": "none",
        "CgroupVersion": "2",
        "NEventsListener": 0,
        "KernelVersion": "",
        "OperatingSystem": f"sockerless ({frontend.backend_name})",
        "OSVersion": "",
        "OSType": "linux",
        "Architecture": frontend.backend_version.arch,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [],
            "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": [],
            "IndexConfigs": {},
            "Mirrors": [],
        },
        "NCPU": 0,
        "MemTotal": 0,
        "GenericResources": None,
        "DockerRootDir": "",
        "HttpProxy": "",
        "HttpsProxy": "",
        "NoProxy": "",
        "Labels": [f"sockerless.backend={frontend.backend_name}"],
        "ExperimentalBuild": False,
        "Runtimes": {frontend.backend_name: {"path": frontend.backend_name}},
        "DefaultRuntime": frontend.backend_name,
        "Swarm": {
            "NodeID": "",
            "NodeAddr": "",
            "LocalNodeState": "inactive",
            "ControlAvailable": False,
            "Error": "",
            "RemoteManagers": None,
        },
        "LiveRestoreEnabled": False,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": {"ID": "", "Expected": ""},
        "RuncCommit": {"ID": "", "Expected": ""},
        "InitCommit": {"ID": "", "Expected": ""},
        "SecurityOptions": [],
        "Warnings": [],
    }
    body.update({key: value for key, value in backend.items() if value not in ("", None)})
    return json_response(body)


async def disk_usage(request: web.Request) -> web.StreamResponse:
    """``docker system df``: the backend's images (each with the number of containers using it) and
    containers. Nothing is kept on a disk of this host, so the sizes are what the backend knows (0 for
    Lambda); there are no volumes and no build cache."""
    wanted = request.query.getall("type", []) or _DISK_USAGE_TYPES
    client = frontend_of(request).client
    body: dict[str, Any] = {"LayersSize": 0, "Images": None, "Containers": None, "Volumes": None}
    body["BuildCache"] = [] if "build-cache" in wanted else None
    if "volume" in wanted:
        body["Volumes"] = []
    if "image" in wanted or "container" in wanted:
        containers = await client.list_containers(all=True)
        if "container" in wanted:
            body["Containers"] = [
                {**unstructure(row), "SizeRw": row.size_rw or 0, "SizeRootFs": 0} for row in containers
            ]
        if "image" in wanted:
            using = Counter(row.image_id for row in containers)
            images = [
                attrs.evolve(row, containers=using[row.id], shared_size=0)
                for row in await client.list_images()
            ]
            body["Images"] = unstructure(images)
            body["LayersSize"] = sum(row.size for row in images)
    return json_response(body)
