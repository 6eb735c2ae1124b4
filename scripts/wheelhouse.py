"""Build the terminal's wheelhouse: kassa's wheel and every runtime dependency, as wheels, for an offline install.

    python scripts/wheelhouse.py [--arch x86_64|aarch64] [--out build/wheelhouse]

`make wheelhouse` runs this. The set of packages is the runtime closure of kassa's own wheel (its Requires-Dist,
then each dependency's, with environment markers evaluated for the terminal, not for this machine); every version
and file hash comes from requirements.lock, so dev tools never end up on a terminal and nothing unlocked does.
A dependency published only as an sdist is built into a wheel here (a terminal has no compiler and no index);
that works for any target when the result is pure Python, and otherwise only when the terminal's architecture
and Python are this machine's. The result is checked by letting pip resolve kassa from the wheelhouse alone, for
the target platform. On the terminal: `pip install --no-index --find-links wheelhouse kassa` (docs/deployment.md).
"""

from __future__ import annotations

import argparse
import email.parser
import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from packaging.markers import Marker, default_environment
from packaging.requirements import Requirement
from packaging.utils import NormalizedName, canonicalize_name, parse_sdist_filename, parse_wheel_filename

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
# Debian 12, the terminals' system: Python 3.11 and glibc 2.36.
DEFAULT_PYTHON = "3.11"
DEFAULT_GLIBC = "2.36"
# The oldest manylinux each architecture was ever published for (PEP 600 numbering).
OLDEST_MANYLINUX = {"x86_64": 5, "aarch64": 17, "armv7l": 17}
# Files of ours in the output directory; anything else there makes the script refuse to clear it.
OWN_FILES = re.compile(r".*\.(whl|tar\.gz|zip)$|^SHA256SUMS$")
# Not copied into the clean source tree kassa's wheel is built from (a stale build/lib would leak into it).
NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "tests", "bench"
)


@dataclass(frozen=True)
class Pin:
    name: NormalizedName
    version: str
    marker: str | None
    hashes: tuple[str, ...]

    def requirement_line(self) -> str:
        return f"{self.name}=={self.version} " + " ".join(f"--hash=sha256:{h}" for h in self.hashes)


@dataclass(frozen=True)
class Target:
    arch: str
    python: str  # "3.11"
    glibc: str  # "2.36"

    def platforms(self) -> list[str]:
        major, newest = (int(part) for part in self.glibc.split("."))
        tags = [
            f"manylinux_{major}_{minor}_{self.arch}" for minor in range(newest, OLDEST_MANYLINUX[self.arch] - 1, -1)
        ]
        # Wheels built before PEP 600 carry the legacy aliases of 2_17, 2_12 and 2_5.
        tags.append(f"manylinux2014_{self.arch}")
        if self.arch == "x86_64":
            tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
        return tags

    def pip_flags(self, *, with_local_builds: bool = False) -> list[str]:
        """pip's target-platform options; with_local_builds also accepts the linux_* wheels built here."""
        flags = ["--python-version", self.python, "--implementation", "cp"]
        abi = "cp" + self.python.replace(".", "")
        for value in (abi, "abi3", "none"):
            flags += ["--abi", value]
        local = [f"linux_{self.arch}"] if with_local_builds else []
        for tag in self.platforms() + local:
            flags += ["--platform", tag]
        return flags

    def marker_environment(self) -> dict[str, str]:
        env = {key: str(value) for key, value in default_environment().items()}
        env.update(
            implementation_name="cpython",
            platform_python_implementation="CPython",
            os_name="posix",
            sys_platform="linux",
            platform_system="Linux",
            platform_machine=self.arch,
            python_version=self.python,
            python_full_version=self.python + ".0",
        )
        return env

    def is_this_machine(self) -> bool:
        return platform.machine() == self.arch and f"{sys.version_info.major}.{sys.version_info.minor}" == self.python


class WheelhouseError(Exception):
    pass


def read_lock(path: Path) -> dict[NormalizedName, Pin]:
    pins: dict[NormalizedName, Pin] = {}
    current: tuple[NormalizedName, str, str | None] | None = None
    hashes: list[str] = []

    def close() -> None:
        if current is not None:
            pins[current[0]] = Pin(current[0], current[1], current[2], tuple(hashes))

    for line in path.read_text().splitlines():
        entry = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)\s*(?:;\s*(.*?))?\s*\\?$", line)
        if entry:
            close()
            current, hashes = (canonicalize_name(entry[1]), entry[2], entry[3]), []
        elif digest := re.search(r"--hash=sha256:([0-9a-f]{64})", line):
            hashes.append(digest[1])
    close()
    return pins


def requires_dist(wheel: Path) -> list[Requirement]:
    with zipfile.ZipFile(wheel) as archive:
        (metadata_name,) = [n for n in archive.namelist() if re.fullmatch(r"[^/]+\.dist-info/METADATA", n)]
        metadata = email.parser.Parser().parsestr(archive.read(metadata_name).decode())
    return [Requirement(text) for text in metadata.get_all("Requires-Dist") or []]


def runtime_dependencies(
    wheel: Path, extras: set[str], lock: dict[NormalizedName, Pin], environment: dict[str, str]
) -> list[tuple[NormalizedName, set[str]]]:
    """What a wheel needs on the target (with the extras it was asked for), each checked against its pin."""
    name = parse_wheel_filename(wheel.name)[0]
    needed = []
    for requirement in requires_dist(wheel):
        if requirement.marker and not any(
            requirement.marker.evaluate({**environment, "extra": extra}) for extra in {"", *extras}
        ):
            continue
        dependency = canonicalize_name(requirement.name)
        pin = lock.get(dependency)
        if pin is None:
            raise WheelhouseError(f"{dependency} (needed by {name}) is not in requirements.lock: run make lock")
        if pin.marker and not Marker(pin.marker).evaluate(environment):
            continue
        if not requirement.specifier.contains(pin.version, prereleases=True):
            raise WheelhouseError(f"{name} needs {requirement}, the lock has {pin.version}: run make lock")
        needed.append((dependency, set(requirement.extras)))
    return needed


def files_by_project(directory: Path) -> dict[NormalizedName, Path]:
    found: dict[NormalizedName, Path] = {}
    for file in directory.iterdir():
        if file.name.endswith(".whl"):
            found[parse_wheel_filename(file.name)[0]] = file
        elif file.name.endswith((".tar.gz", ".zip")):
            found.setdefault(parse_sdist_filename(file.name)[0], file)
    return found


def pip(*args: str) -> None:
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        raise WheelhouseError(f"{' '.join(command[:6])} ... failed:\n{result.stdout[-2000:]}{result.stderr[-4000:]}")


def build_kassa_wheel(into: Path, scratch: Path) -> Path:
    source = scratch / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)
    # The locked setuptools of this venv builds it: no build-isolation download, the same backend every time.
    pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(into), str(source))
    (wheel,) = into.glob("kassa-*.whl")
    return wheel


def download(pins: list[Pin], target: Target, into: Path, scratch: Path) -> None:
    requirements = scratch / "download.txt"
    requirements.write_text("".join(pin.requirement_line() + "\n" for pin in pins))
    # --no-deps: the closure is computed here, from the lock; it also lets pip fall back to an sdist where the
    # target has no wheel, which build_sdists then turns into one (or names as impossible).
    pip("download", "--no-deps", "--require-hashes", "--dest", str(into), *target.pip_flags(), "-r", str(requirements))


def take_prebuilt(sdists: list[Path], prebuilt: Path | None, target: Target, into: Path) -> list[Path]:
    """Copy wheels built on a terminal-like machine for the sdist-only packages; return the sdists still unbuilt."""
    left = []
    for sdist in sdists:
        name, version = parse_sdist_filename(sdist.name)
        candidates = [
            wheel
            for wheel in (prebuilt.glob("*.whl") if prebuilt else [])
            if parse_wheel_filename(wheel.name)[:2] == (name, version)
            and any(tag.platform.endswith(target.arch) for tag in parse_wheel_filename(wheel.name)[3])
        ]
        if candidates:
            shutil.copy2(candidates[0], into / candidates[0].name)
            sdist.unlink()
            print(f"wheelhouse: took {candidates[0].name} from {prebuilt}")
        else:
            left.append(sdist)
    return left


def build_sdists(
    sdists: list[Path], lock: dict[NormalizedName, Pin], target: Target, into: Path, scratch: Path
) -> None:
    """Turn each sdist into a wheel with this venv's (locked) setuptools; name every one the target cannot use."""
    unusable = []
    for sdist in sdists:
        name = parse_sdist_filename(sdist.name)[0]
        pin = lock[name]
        requirements = scratch / f"build-{name}.txt"
        requirements.write_text(pin.requirement_line() + "\n")
        built = scratch / f"built-{name}"
        try:
            pip(
                "wheel",
                *("--no-deps", "--require-hashes", "--no-build-isolation", "--no-binary", name),
                *("--find-links", str(into), "--wheel-dir", str(built), "-r", str(requirements)),
            )
        except WheelhouseError:
            if target.is_this_machine():
                raise
            unusable.append(f"{name}=={pin.version} (does not build here)")
            continue
        (wheel,) = built.glob("*.whl")
        portable = all(tag.platform == "any" for tag in parse_wheel_filename(wheel.name)[3])
        if not portable and not target.is_this_machine():
            unusable.append(f"{name}=={pin.version} (a C extension)")
            continue
        shutil.move(wheel, into / wheel.name)
        sdist.unlink()
        print(f"wheelhouse: built {wheel.name} here (the index has no wheel for this target)")
    if unusable:
        raise WheelhouseError(
            f"no wheel on the index for linux {target.arch} / Python {target.python}, and none can be built on this "
            f"machine, for: {', '.join(unusable)}. Build them on such a machine (`pip wheel --no-deps NAME==VERSION`) "
            "and pass their directory with --prebuilt"
        )


def clear(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    strangers = [f.name for f in out.iterdir() if not OWN_FILES.match(f.name)]
    if strangers:
        raise WheelhouseError(
            f"{out} holds files that are not a wheelhouse's ({', '.join(strangers[:5])}): not clearing it"
        )
    for file in out.iterdir():
        file.unlink()


def verify(out: Path, target: Target, scratch: Path, kassa_version: str) -> None:
    """pip resolves kassa from the wheelhouse alone, as the terminal will, for the target's platform."""
    pip(
        "install",
        "--dry-run",
        "--ignore-installed",
        "--no-index",
        "--find-links",
        str(out),
        "--only-binary=:all:",
        "--target",
        str(scratch / "resolve"),
        *target.pip_flags(with_local_builds=True),
        f"kassa=={kassa_version}",
    )


def write_checksums(out: Path) -> None:
    lines = [f"{hashlib.sha256(f.read_bytes()).hexdigest()}  {f.name}\n" for f in sorted(out.glob("*.whl"))]
    (out / "SHA256SUMS").write_text("".join(lines))


def build(out: Path, target: Target, prebuilt: Path | None = None) -> list[Path]:
    lock = read_lock(LOCK)
    environment = target.marker_environment()
    clear(out)
    with tempfile.TemporaryDirectory(prefix="kassa-wheelhouse-") as scratch_name:
        scratch = Path(scratch_name)
        kassa = build_kassa_wheel(out, scratch)
        kassa_version = parse_wheel_filename(kassa.name)[1]
        # Breadth first: one pip download per level of the dependency tree, each wheel's metadata naming the next.
        wanted_extras: dict[NormalizedName, set[str]] = {}
        done_extras: dict[NormalizedName, set[str]] = {}
        metadata_of: dict[NormalizedName, Path] = {canonicalize_name("kassa"): kassa}
        level: list[tuple[NormalizedName, set[str]]] = [(canonicalize_name("kassa"), set())]
        while level:
            next_names: set[NormalizedName] = set()
            for name, extras in level:
                for dependency, dependency_extras in runtime_dependencies(metadata_of[name], extras, lock, environment):
                    wanted_extras.setdefault(dependency, set()).update(dependency_extras)
                    next_names.add(dependency)
            missing = sorted(n for n in next_names if n not in metadata_of)
            if missing:
                download([lock[n] for n in missing], target, out, scratch)
                present = files_by_project(out)
                sdists = [present[n] for n in missing if not present[n].name.endswith(".whl")]
                sdists = take_prebuilt(sdists, prebuilt, target, out)
                if sdists:
                    build_sdists(sdists, lock, target, out, scratch)
                present = files_by_project(out)
                metadata_of.update({n: present[n] for n in missing})
            level = []
            for dependency in sorted(next_names):
                extras = wanted_extras[dependency]
                if dependency not in done_extras or not extras <= done_extras[dependency]:
                    done_extras.setdefault(dependency, set()).update(extras)
                    level.append((dependency, set(extras)))
        verify(out, target, scratch, str(kassa_version))
    write_checksums(out)
    return sorted(out.glob("*.whl"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "wheelhouse")
    parser.add_argument("--arch", choices=sorted(OLDEST_MANYLINUX), default=platform.machine())
    parser.add_argument("--python", default=DEFAULT_PYTHON, help="the terminal's Python, major.minor")
    parser.add_argument("--glibc", default=DEFAULT_GLIBC, help="the terminal's glibc (Debian 12: 2.36)")
    parser.add_argument(
        "--prebuilt",
        type=Path,
        help="wheels built on a machine like the terminal, for packages PyPI has only as sdists (evdev on aarch64)",
    )
    options = parser.parse_args(argv)
    target = Target(options.arch, options.python, options.glibc)
    try:
        wheels = build(options.out, target, options.prebuilt)
    except WheelhouseError as error:
        print(f"wheelhouse: {error}", file=sys.stderr)
        return 1
    size = sum(w.stat().st_size for w in wheels)
    shown = os.path.relpath(options.out) if options.out.resolve().is_relative_to(Path.cwd()) else options.out
    where = f"{shown} for linux {target.arch}, Python {target.python}"
    print(f"wheelhouse: {len(wheels)} wheels, {size / 1e6:.1f} MB in {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
