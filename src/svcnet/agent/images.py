"""Image names → commands: svcnet cannot pull images, so an image names a program.

``resolve_image(image, command, args, image_map)`` returns the argv a container runs,
with Kubernetes' rules for overriding an image: ``command`` replaces the image's
entrypoint (and drops its default arguments), ``args`` replace its default arguments.
A container with a ``command`` runs it with the host's tools even when the image is
unknown; an unknown image without one raises ``ImageNotFound`` (reason ``ErrImagePull``)
whose message says how to map it.

Images are matched on their repository, ignoring the registry host and the tag, unless a
map entry names a registry or a tag (then those must match too); Docker Hub's
``library/`` prefix is optional (``nginx`` = ``docker.io/library/nginx``). A user map
(``load_image_map``; YAML: ``name: [argv...]`` or ``name: {command, args, env}``) is
consulted before the built-in table and overrides it.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
"""``PATH`` the images carry (as Docker's base images do); host tools resolve through it."""

DEFAULT_MAP_FILE = "<data-dir>/images.yaml"

_DEMO = "svcnet.agent.demo"
_REFERENCE = re.compile(
    r"^(?:(?P<registry>(?:[a-zA-Z0-9-]+\.)*[a-zA-Z0-9-]+(?::[0-9]+)?)/)?"
    r"(?P<path>[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*)"
    r"(?::(?P<tag>[\w][\w.-]{0,127}))?"
    r"(?:@(?P<digest>[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}))?$")


class ImageNotFound(Exception):
    """The container cannot run: ``reason`` is the waiting reason the pod shows
    (``ErrImagePull`` or ``InvalidImageName``) and ``str(err)`` its message."""

    def __init__(self, message: str, reason: str = "ErrImagePull") -> None:
        super().__init__(message)
        self.reason = reason


class ImageMapError(ValueError):
    """The user's image map file is malformed."""


@dataclass(frozen=True)
class ImageSpec:
    """What an image would contain: ``entrypoint`` (ENTRYPOINT), ``cmd`` (its default
    arguments, CMD) and ``env`` (its ENV). ``name`` labels it in the image ID."""

    name: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()

    def digest(self) -> str:
        """Hex SHA-256 of the mapping: stable while the mapping stays the same."""
        doc = json.dumps([self.name, self.entrypoint, self.cmd, self.env], sort_keys=True)
        return hashlib.sha256(doc.encode()).hexdigest()


@dataclass(frozen=True)
class ResolvedImage:
    """How to run one container: ``argv``, an ``image_id`` for
    ``containerStatuses[].imageID`` and the image's ``default_env`` (lowest precedence,
    below the container's own env)."""

    argv: list[str]
    image_id: str
    default_env: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageRef:
    """A parsed image reference; ``registry`` is ``None`` when the name had none."""

    registry: str | None
    path: str
    tag: str | None
    digest: str | None = None

    @property
    def canonical_path(self) -> str:
        """The repository path with Docker Hub's implicit ``library/`` removed."""
        registry = self.registry or "docker.io"
        if registry in ("docker.io", "index.docker.io") and self.path.startswith("library/"):
            return self.path[len("library/"):]
        return self.path


def parse_reference(image: str) -> ImageRef | None:
    """Split ``[registry/]path[:tag][@digest]``; ``None`` if it is not a valid reference.
    The first component is a registry only if it has a '.' or ':' or is ``localhost``."""
    m = _REFERENCE.match(image)
    if m is None:
        return None
    registry, path = m.group("registry"), m.group("path")
    if registry is not None and "." not in registry and ":" not in registry \
            and registry != "localhost":
        if registry != registry.lower():
            return None
        path, registry = f"{registry}/{path}", None
    return ImageRef(registry, path, m.group("tag"), m.group("digest"))


def _python(module: str, *flags: str) -> tuple[str, ...]:
    return (sys.executable, "-m", f"{_DEMO}.{module}", *flags)


def _spec(name: str, entrypoint: Sequence[str] = (), cmd: Sequence[str] = (),
          **env: str) -> ImageSpec:
    return ImageSpec(name, tuple(entrypoint), tuple(cmd),
                     tuple(sorted({"PATH": DEFAULT_PATH, **env}.items())))


_KUARD = _spec("kuard", _python("kuard"))
_SHELL_IDLE = _spec("shell", (), _python("shell"))
_NGINX_ECHO = _spec("echo", _python("echo", "--default-port=80"))

BUILTIN_IMAGES: dict[str, ImageSpec] = {
    "kuar-demo/kuard-amd64": _KUARD,
    "kuar-demo/kuard-arm64": _KUARD,
    "kuar-demo/kuard": _KUARD,
    "praqma/network-multitool": _SHELL_IDLE,
    "wbitt/network-multitool": _SHELL_IDLE,
    "kiamol/ch03-sleep": _SHELL_IDLE,
    "kiamol/ch03-numbers-api": _spec(
        "numbers-api", _python("echo", "--mode=numbers-api", "--default-port=80"),
        FailAfterCallCount="0"),
    "kiamol/ch03-numbers-web": _spec(
        "numbers-web", _python("echo", "--mode=numbers-web", "--default-port=80"),
        RngApi__Url="http://numbers-api/sixeyed/kiamol/master/ch03/numbers/rng"),
    "busybox": _spec("busybox", (), ("sh",)),
    "alpine": _spec("alpine", (), ("/bin/sh",)),
    "ubuntu": _spec("ubuntu", (), ("/bin/bash",)),
    "debian": _spec("debian", (), ("bash",)),
    "nginx": _NGINX_ECHO,
    "hashicorp/http-echo": _spec("http-echo", _python("echo", "--default-port=5678")),
    "echoserver": _spec("echoserver", _python("echo", "--default-port=8080")),
    "google-samples/hello-app": _spec(
        "hello-app", _python("echo", "--mode=hello", "--default-port=8080")),
}
"""Built-in images, keyed by repository path (registry and tag ignored)."""

_VERSIONED = {"google-samples/hello-app": True, "kuar-demo/kuard-amd64": False,
              "kuar-demo/kuard-arm64": False, "kuar-demo/kuard": False}
"""Images whose tag is their version, shown by the demo app (``hello-app:2.0`` says
``Version: 2.0.0``, the value says whether to pad to three numbers; kuard shows ``blue``)."""


def parse_image_map(raw: Mapping[str, Any] | None) -> dict[str, ImageSpec]:
    """Validate a user image map: each value is an argv list (the entrypoint) or a mapping
    with ``command`` (entrypoint), ``args`` (default arguments) and ``env``."""
    out: dict[str, ImageSpec] = {}
    for key, value in (raw or {}).items():
        if isinstance(value, ImageSpec):
            out[str(key)] = value
            continue
        if parse_reference(str(key)) is None:
            raise ImageMapError(f"image map: {key!r} is not an image name")
        if isinstance(value, list):
            value = {"command": value}
        if not isinstance(value, Mapping):
            raise ImageMapError(f"image map: {key}: expected a list or a mapping")
        unknown = set(value) - {"command", "args", "env"}
        if unknown:
            raise ImageMapError(f"image map: {key}: unknown fields {sorted(unknown)}")
        command = _strings(key, "command", value.get("command"))
        args = _strings(key, "args", value.get("args"))
        if not command and not args:
            raise ImageMapError(f"image map: {key}: needs a command or args")
        env = value.get("env") or {}
        if not isinstance(env, Mapping):
            raise ImageMapError(f"image map: {key}: env must be a mapping")
        out[str(key)] = _spec(str(key), command, args, **{str(k): str(v) for k, v in env.items()})
    return out


def _strings(key: str, name: str, value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(x, str | int | float) for x in value):
        raise ImageMapError(f"image map: {key}: {name} must be a list of strings")
    return [str(x) for x in value]


def load_image_map(path: str | Path) -> dict[str, ImageSpec]:
    """Read a YAML image map file; a missing file is an empty map."""
    p = Path(path)
    if not p.exists():
        return {}
    try:
        raw = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ImageMapError(f"{p}: {err}") from err
    if not isinstance(raw, Mapping):
        raise ImageMapError(f"{p}: expected a mapping of image names")
    return parse_image_map(raw)


def _lookup(ref: ImageRef, table: Mapping[str, ImageSpec]) -> ImageSpec | None:
    """Most specific entry of ``table`` matching ``ref``: registry+tag, registry,
    tag, then the bare repository."""
    best: tuple[int, ImageSpec] | None = None
    tag = ref.tag or "latest"
    registry = ref.registry or "docker.io"
    for key, spec in table.items():
        k = parse_reference(key)
        if k is None or k.canonical_path != ref.canonical_path:
            continue
        if k.registry is not None and k.registry != registry:
            continue
        if k.tag is not None and k.tag != tag:
            continue
        score = (2 if k.registry is not None else 0) + (1 if k.tag is not None else 0)
        if best is None or score > best[0]:
            best = (score, spec)
    return best[1] if best else None


def _version_env(ref: ImageRef) -> dict[str, str]:
    """``SVCNET_IMAGE_VERSION`` from the tag, for built-in images that show a version."""
    if ref.canonical_path not in _VERSIONED or ref.tag is None:
        return {}
    tag = ref.tag
    parts = tag.split(".")
    if _VERSIONED[ref.canonical_path] and all(p.isdigit() for p in parts):
        tag = ".".join(parts + ["0"] * (3 - len(parts)))
    return {"SVCNET_IMAGE_VERSION": tag}


def resolve_image(image: str, command: list[str] | None, args: list[str] | None,
                  image_map: Mapping[str, Any] | None = None, *,
                  map_file: str = DEFAULT_MAP_FILE) -> ResolvedImage:
    """Resolve a container's image, ``command`` and ``args`` to what to run.

    Empty ``command``/``args`` count as absent, as in Kubernetes. ``image_map`` (raw YAML
    content or parsed ``ImageSpec``s) is consulted before the built-in images.
    ``map_file`` is named in the error message. Raises ``ImageNotFound`` for an invalid
    reference (reason ``InvalidImageName``) or an unknown image without ``command``.
    """
    ref = parse_reference(image)
    if ref is None:
        raise ImageNotFound(
            f'Failed to apply default image tag "{image}": couldn\'t parse image name '
            f'"{image}": invalid reference format', reason="InvalidImageName")
    spec = _lookup(ref, parse_image_map(image_map))
    env_extra: dict[str, str] = {}
    if spec is None:
        spec = _lookup(ref, BUILTIN_IMAGES)
        env_extra = _version_env(ref) if spec is not None else {}
    if spec is None:
        if not command:
            example = json.dumps({ref.canonical_path: ["/usr/bin/prog", "--flag"]})
            raise ImageNotFound(
                f'image "{image}" is not known to svcnet; run it with a command, '
                f"or map it in {map_file}: {example}")
        spec = _spec("host")
    if command:
        argv = [*command, *(args or [])]
    else:
        argv = [*spec.entrypoint, *(args if args else spec.cmd)]
    if not argv:
        raise ImageNotFound(f'image "{image}": no command specified', reason="RunContainerError")
    env = {**dict(spec.env), **env_extra}
    return ResolvedImage(argv=argv, image_id=f"svcnet://{spec.name}@sha256:{spec.digest()}",
                         default_env=env)
