"""Image resolution contract: built-in names, Kubernetes command/args override rules, the
user's image map, and the error that tells the user how to map an unknown image."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from svcnet.agent.images import (
    DEFAULT_PATH,
    ImageMapError,
    ImageNotFound,
    load_image_map,
    parse_reference,
    resolve_image,
)

PY = sys.executable
KUARD = [PY, "-m", "svcnet.agent.demo.kuard"]
SHELL = [PY, "-m", "svcnet.agent.demo.shell"]
ECHO = [PY, "-m", "svcnet.agent.demo.echo"]

RESOLVE_CASES: list[tuple[str, str, list[str] | None, list[str] | None, list[str]]] = [
    ("kuard by tag", "gcr.io/kuar-demo/kuard-amd64:blue", None, None, KUARD),
    ("kuard numeric tag", "gcr.io/kuar-demo/kuard-amd64:1", None, None, KUARD),
    ("kuard arm64 without tag", "gcr.io/kuar-demo/kuard-arm64", None, None, KUARD),
    ("kuard other registry", "ghcr.io/kuar-demo/kuard:v0.2-2", None, None, KUARD),
    ("kuard args go to its entrypoint", "gcr.io/kuar-demo/kuard-amd64:blue", None,
     ["--port", "9000"], [*KUARD, "--port", "9000"]),
    ("command replaces entrypoint and default args", "gcr.io/kuar-demo/kuard-amd64:blue",
     ["sleep"], None, ["sleep"]),
    ("command plus args", "busybox", ["sh", "-c"], ["echo hi"], ["sh", "-c", "echo hi"]),
    ("busybox default is sh", "busybox", None, None, ["sh"]),
    ("busybox with digest", "busybox@sha256:" + "a" * 64, None, None, ["sh"]),
    ("busybox args replace the default command", "busybox:1.36", None,
     ["sleep", "3600"], ["sleep", "3600"]),
    ("docker hub long form", "docker.io/library/busybox:latest", None, None, ["sh"]),
    ("alpine", "alpine:3.19", None, None, ["/bin/sh"]),
    ("empty command and args count as absent", "busybox", [], [], ["sh"]),
    ("multitool idles", "praqma/network-multitool", None, None, SHELL),
    ("multitool exec-style args", "praqma/network-multitool:latest", None,
     ["nslookup", "kubernetes"], ["nslookup", "kubernetes"]),
    ("kiamol sleep", "kiamol/ch03-sleep", None, None, SHELL),
    ("kiamol numbers api", "kiamol/ch03-numbers-api", None, None,
     [*ECHO, "--mode=numbers-api", "--default-port=80"]),
    ("kiamol numbers web v2", "kiamol/ch03-numbers-web:v2", None, None,
     [*ECHO, "--mode=numbers-web", "--default-port=80"]),
    ("nginx", "nginx:1.25-alpine", None, None, [*ECHO, "--default-port=80"]),
    ("http-echo", "hashicorp/http-echo", None, ["-text=hello", "-listen=:5678"],
     [*ECHO, "--default-port=5678", "-text=hello", "-listen=:5678"]),
    ("echoserver old registry", "k8s.gcr.io/echoserver:1.4", None, None,
     [*ECHO, "--default-port=8080"]),
    ("echoserver new registry", "registry.k8s.io/echoserver:1.10", None, None,
     [*ECHO, "--default-port=8080"]),
    ("hello-app", "gcr.io/google-samples/hello-app:2.0", None, None,
     [*ECHO, "--mode=hello", "--default-port=8080"]),
    ("unknown image with a command runs the host command", "mycorp/tool:9",
     ["/bin/true"], ["x"], ["/bin/true", "x"]),
]


@pytest.mark.parametrize(("image", "command", "args", "argv"),
                         [c[1:] for c in RESOLVE_CASES], ids=[c[0] for c in RESOLVE_CASES])
def test_resolve(image: str, command: list[str] | None, args: list[str] | None,
                 argv: list[str]) -> None:
    got = resolve_image(image, command, args)
    assert got.argv == argv
    assert got.image_id.startswith("svcnet://") and "@sha256:" in got.image_id
    assert got.default_env["PATH"] == DEFAULT_PATH


def test_image_env_defaults() -> None:
    web = resolve_image("kiamol/ch03-numbers-web", None, None)
    assert web.default_env["RngApi__Url"] == \
        "http://numbers-api/sixeyed/kiamol/master/ch03/numbers/rng"
    assert resolve_image("gcr.io/google-samples/hello-app:2.0", None, None) \
        .default_env["SVCNET_IMAGE_VERSION"] == "2.0.0"
    assert resolve_image("gcr.io/kuar-demo/kuard-amd64:blue", None, None) \
        .default_env["SVCNET_IMAGE_VERSION"] == "blue"
    assert "SVCNET_IMAGE_VERSION" not in resolve_image("nginx:1.25", None, None).default_env


def test_image_id_is_stable_and_distinguishes_images() -> None:
    a = resolve_image("gcr.io/kuar-demo/kuard-amd64:blue", None, None).image_id
    b = resolve_image("gcr.io/kuar-demo/kuard-amd64:green", None, ["--port", "1"]).image_id
    c = resolve_image("nginx", None, None).image_id
    assert a == b != c
    assert a.startswith("svcnet://kuard@sha256:")


ERROR_CASES: list[tuple[str, str, str, str]] = [
    ("unknown image", "foo/bar:1", "ErrImagePull",
     'image "foo/bar:1" is not known to svcnet; run it with a command, or map it in '
     '<data-dir>/images.yaml: {"foo/bar": ["/usr/bin/prog", "--flag"]}'),
    ("unknown image behind a registry", "quay.io/org/app", "ErrImagePull",
     'image "quay.io/org/app" is not known to svcnet; run it with a command, or map it in '
     '<data-dir>/images.yaml: {"org/app": ["/usr/bin/prog", "--flag"]}'),
    ("invalid reference", "Not/Valid:image", "InvalidImageName",
     'Failed to apply default image tag "Not/Valid:image": couldn\'t parse image name '
     '"Not/Valid:image": invalid reference format'),
]


@pytest.mark.parametrize(("image", "reason", "message"), [c[1:] for c in ERROR_CASES],
                         ids=[c[0] for c in ERROR_CASES])
def test_errors(image: str, reason: str, message: str) -> None:
    with pytest.raises(ImageNotFound) as info:
        resolve_image(image, None, None)
    assert info.value.reason == reason
    assert str(info.value) == message


def test_error_names_the_map_file() -> None:
    with pytest.raises(ImageNotFound, match="/var/lib/svcnet/images.yaml"):
        resolve_image("foo/bar", None, None, map_file="/var/lib/svcnet/images.yaml")


USER_MAP: dict[str, Any] = {
    "foo/bar": ["/usr/bin/prog", "--flag"],
    "foo/bar:debug": {"command": ["/usr/bin/prog"], "args": ["--debug"],
                      "env": {"LEVEL": "debug"}},
    "nginx": {"command": ["/usr/sbin/my-nginx"], "args": ["-g", "daemon off;"]},
    "registry.example/private/app": ["/opt/app"],
}

MAP_CASES: list[tuple[str, str, list[str] | None, list[str]]] = [
    ("argv list is the entrypoint; args are appended", "foo/bar:1", ["-v"],
     ["/usr/bin/prog", "--flag", "-v"]),
    ("registry is ignored when the key has none", "ghcr.io/foo/bar", None,
     ["/usr/bin/prog", "--flag"]),
    ("tagged entry wins for its tag", "foo/bar:debug", None, ["/usr/bin/prog", "--debug"]),
    ("map args are defaults replaced by container args", "foo/bar:debug", ["-q"],
     ["/usr/bin/prog", "-q"]),
    ("map overrides a built-in", "nginx:latest", None,
     ["/usr/sbin/my-nginx", "-g", "daemon off;"]),
    ("key with registry matches that registry", "registry.example/private/app:3", None,
     ["/opt/app"]),
]


@pytest.mark.parametrize(("image", "args", "argv"), [c[1:] for c in MAP_CASES],
                         ids=[c[0] for c in MAP_CASES])
def test_user_map(image: str, args: list[str] | None, argv: list[str]) -> None:
    assert resolve_image(image, None, args, USER_MAP).argv == argv


def test_user_map_env_and_registry_mismatch() -> None:
    assert resolve_image("foo/bar:debug", None, None, USER_MAP).default_env["LEVEL"] == "debug"
    with pytest.raises(ImageNotFound):
        resolve_image("other.example/private/app", None, None, USER_MAP)


def test_load_image_map(tmp_path: Path) -> None:
    path = tmp_path / "images.yaml"
    path.write_text("foo/bar: [/usr/bin/prog, --flag]\n"
                    "web:\n  command: [python3, -m, http.server]\n  env: {A: 1}\n")
    specs = load_image_map(path)
    assert resolve_image("foo/bar", None, None, specs).argv == ["/usr/bin/prog", "--flag"]
    web = resolve_image("web:2", None, ["8000"], specs)
    assert web.argv == ["python3", "-m", "http.server", "8000"]
    assert web.default_env["A"] == "1"
    assert load_image_map(tmp_path / "missing.yaml") == {}


BAD_MAPS: list[tuple[str, str]] = [
    ("not a mapping", "- a\n- b\n"),
    ("value not list or mapping", "foo: 3\n"),
    ("unknown field", "foo: {cmd: [x]}\n"),
    ("empty entry", "foo: {env: {A: b}}\n"),
    ("bad image name", "'Bad Name': [x]\n"),
    ("broken yaml", "foo: [\n"),
]


@pytest.mark.parametrize("text", [c[1] for c in BAD_MAPS], ids=[c[0] for c in BAD_MAPS])
def test_bad_image_map(tmp_path: Path, text: str) -> None:
    path = tmp_path / "images.yaml"
    path.write_text(text)
    with pytest.raises(ImageMapError):
        load_image_map(path)


REF_CASES: list[tuple[str, str, tuple[str | None, str, str | None]]] = [
    ("bare", "nginx", (None, "nginx", None)),
    ("hub user", "kiamol/ch03-sleep:latest", (None, "kiamol/ch03-sleep", "latest")),
    ("registry with port", "localhost:5000/app:1", ("localhost:5000", "app", "1")),
    ("gcr", "gcr.io/kuar-demo/kuard-amd64:blue", ("gcr.io", "kuar-demo/kuard-amd64", "blue")),
]


@pytest.mark.parametrize(("image", "want"), [c[1:] for c in REF_CASES],
                         ids=[c[0] for c in REF_CASES])
def test_parse_reference(image: str, want: tuple[str | None, str, str | None]) -> None:
    ref = parse_reference(image)
    assert ref is not None
    assert (ref.registry, ref.path, ref.tag) == want
