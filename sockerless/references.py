"""Image references, parsed and normalised the way Docker does it.

``alpine`` is ``docker.io/library/alpine:latest``; a registry host (anything before the first ``/``
that contains ``.`` or ``:``, or is ``localhost``) is kept as given; a reference pinned by digest
keeps its digest and gets no ``latest`` tag. The grammar is the one of ``distribution/reference``.
"""

from __future__ import annotations

import json
import re

from attrs import frozen

from sockerless.errors import InvalidParameter

__all__ = ["DEFAULT_DOMAIN", "Reference", "normalize_reference", "parse_reference"]

DEFAULT_DOMAIN = "docker.io"
_LEGACY_DEFAULT_DOMAIN = "index.docker.io"
_OFFICIAL_REPO_PREFIX = "library/"
_DEFAULT_TAG = "latest"
_NAME_TOTAL_LENGTH_MAX = 255

# distribution/reference's regexp.go, spelled with ASCII classes (Python's \w is Unicode).
_ALPHANUMERIC = r"[a-z0-9]+"
_SEPARATOR = r"(?:[._]|__|-+)"
_PATH_COMPONENT = rf"{_ALPHANUMERIC}(?:{_SEPARATOR}{_ALPHANUMERIC})*"
_DOMAIN_COMPONENT = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_HOST = rf"(?:{_DOMAIN_COMPONENT}(?:\.{_DOMAIN_COMPONENT})*|\[[a-fA-F0-9:]+\])"
_DOMAIN = rf"{_HOST}(?::[0-9]+)?"
_TAG = r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}"
_DIGEST = r"[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}"
_REFERENCE = re.compile(
    rf"(?P<name>(?:(?P<domain>{_DOMAIN})/)?(?P<path>{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*))"
    rf"(?::(?P<tag>{_TAG}))?(?:@(?P<digest>{_DIGEST}))?",
    re.ASCII,
)
_FULL_HEX_ID = re.compile(r"[a-f0-9]{64}")
_DIGEST_HEX_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128}


@frozen
class Reference:
    """A normalised reference: ``{domain}/{path}[:{tag}][@{digest}]``."""

    domain: str  # "docker.io", "localhost:5000", "123456789012.dkr.ecr.us-east-1.amazonaws.com"
    path: str  # "library/alpine"
    tag: str = ""  # empty only when pinned by digest
    digest: str = ""  # "sha256:<64 hex>" or empty

    @property
    def repository(self) -> str:
        """The name without tag or digest: ``docker.io/library/alpine``."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_name(self) -> str:
        """The repository as Docker prints it: ``alpine``, ``user/repo``, ``localhost:5000/x``."""
        if self.domain == DEFAULT_DOMAIN:
            return self.path.removeprefix(_OFFICIAL_REPO_PREFIX)
        return self.repository

    @property
    def familiar(self) -> str:
        """The short form Docker prints in ``RepoTags``: ``alpine:latest``, ``user/repo:tag``."""
        return self.familiar_name + self._suffix()

    def _suffix(self) -> str:
        return (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.repository + self._suffix()


def _invalid(ref: str, reason: str = "") -> InvalidParameter:
    detail = f": {reason}" if reason else ""
    return InvalidParameter(f"invalid reference format{detail}: {json.dumps(ref)}")


def _split_domain(name: str) -> tuple[str, str]:
    """Docker's ``splitDockerDomain``: the first component is a registry only if it looks like a host."""
    first, slash, rest = name.partition("/")
    if not slash or (not any(c in first for c in ".:") and first != "localhost" and first.lower() == first):
        domain, remainder = DEFAULT_DOMAIN, name
    else:
        domain, remainder = first, rest
    if domain == _LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in remainder:
        remainder = _OFFICIAL_REPO_PREFIX + remainder
    return domain, remainder


def _check_digest(ref: str, digest: str) -> None:
    algorithm, _, hex_part = digest.partition(":")
    expected = _DIGEST_HEX_LENGTHS.get(algorithm)
    if expected is None:
        raise _invalid(ref, f"unsupported digest algorithm {algorithm!r}")
    if len(hex_part) != expected or not re.fullmatch(r"[a-f0-9]+", hex_part):
        raise _invalid(ref, f"{algorithm} digest must be {expected} lowercase hex characters")


def parse_reference(ref: str) -> Reference:
    """Parse and normalise an image reference; raises InvalidParameter naming what is wrong."""
    if not ref:
        raise _invalid(ref, "empty reference")
    if _FULL_HEX_ID.fullmatch(ref):
        raise _invalid(ref, "cannot specify 64-byte hexadecimal strings as a repository name")
    domain, remainder = _split_domain(ref)
    repo_path = re.split(r"[:@]", remainder, maxsplit=1)[0]
    if repo_path.lower() != repo_path:
        raise _invalid(ref, f"repository name ({repo_path}) must be lowercase")
    match = _REFERENCE.fullmatch(f"{domain}/{remainder}")
    if match is None or match["domain"] != domain:
        raise _invalid(ref)
    if len(match["name"]) > _NAME_TOTAL_LENGTH_MAX:
        raise _invalid(ref, f"repository name must not be more than {_NAME_TOTAL_LENGTH_MAX} characters")
    tag, digest = match["tag"] or "", match["digest"] or ""
    if digest:
        _check_digest(ref, digest)
    elif not tag:
        tag = _DEFAULT_TAG
    return Reference(domain=match["domain"], path=match["path"], tag=tag, digest=digest)


def normalize_reference(ref: str) -> str:
    """``alpine`` -> ``docker.io/library/alpine:latest``; raises InvalidParameter for invalid references."""
    return str(parse_reference(ref))
