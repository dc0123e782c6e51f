"""The HTTP toolkit both servers are built from: the internal-API server and the Docker frontend.

* :mod:`.responses`: JSON and Docker-shaped errors, streams whose headers go out at once, NDJSON
  progress;
* :mod:`.requests`: query values and JSON bodies, with 400s that say what is wrong;
* :mod:`.middlewares`: access log, error mapping, bearer token, requests in flight;
* :mod:`.sockets` and :mod:`.tls`: owner-only Unix sockets, loopback TCP, TLS contexts;
* :mod:`.listener` and :mod:`.serving`: one listener type and a server with a graceful stop;
* :mod:`.hijack` and :mod:`.upgrade`: Docker's ``Upgrade: tcp``, server and client side.
"""
