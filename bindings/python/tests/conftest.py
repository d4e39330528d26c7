"""Fixtures of the lgd package's tests.

The library is the one `lgd` loads (LGD_LIBRARY, LGD_BUILD_DIR, pkg-config or the loader);
tests/check_python.sh sets LGD_BUILD_DIR to the meson build directory under test. The
reference tests also need that build directory (the `lgd` tool, the generated headers)
and a C compiler; they skip, saying why, when those are missing.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pytest

# The package of this source tree, unless LGD_TEST_INSTALLED=1 asks for the installed one.
if os.environ.get("LGD_TEST_INSTALLED") != "1":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import lgd  # noqa: E402

REPO = Path(__file__).resolve().parents[3]
FIXTURES = REPO / "tests" / "fixtures" / "nn"


def build_dir() -> Optional[Path]:
    """The meson build directory of the library under test, if known."""
    env = os.environ.get("LGD_BUILD_DIR")
    if env:
        return Path(env)
    lib = Path(lgd.library_path).resolve()
    cand = lib.parent.parent
    return cand if (cand / "build.ninja").exists() else None


@pytest.fixture
def ctx():
    """A CPU context with check_callback_outputs on (as the C tests run)."""
    with lgd.Context(check_callback_outputs=True) as c:
        yield c


@pytest.fixture(scope="session")
def lgd_tool() -> Path:
    b = build_dir()
    tool = b / "examples" / "lgd" / "lgd" if b else None
    if tool is None or not os.access(tool, os.X_OK):
        pytest.skip("the lgd tool of the build directory is not available (set LGD_BUILD_DIR)")
    return tool


def _compile_flags() -> Optional[List[str]]:
    b = build_dir()
    if b is not None and (b / "include" / "lgd" / "version.h").exists():
        libdir = str(Path(lgd.library_path).resolve().parent)
        return ["-I", str(REPO / "include"), "-I", str(b / "include"), "-L", libdir,
                f"-Wl,-rpath,{libdir}"]
    try:
        cflags = subprocess.run(["pkg-config", "--cflags", "--libs", "lgd"], check=True,
                                capture_output=True, text=True).stdout.split()
        libdir = str(Path(lgd.library_path).resolve().parent)
        return cflags + [f"-Wl,-rpath,{libdir}"]
    except (OSError, subprocess.CalledProcessError):
        return None


@pytest.fixture(scope="session")
def c_reference(tmp_path_factory) -> Dict[str, np.ndarray]:
    """The output of tests/c/reference.c compiled against the library under test:
    {scenario: uint32 bit patterns}."""
    cc = os.environ.get("CC", "cc").split()
    if shutil.which(cc[0]) is None:
        pytest.skip(f"no C compiler ({cc[0]}) to build the C reference program")
    flags = _compile_flags()
    if flags is None:
        pytest.skip("the library's headers are not found (set LGD_BUILD_DIR or install "
                    "lgd.pc)")
    exe = tmp_path_factory.mktemp("cref") / "reference"
    src = Path(__file__).parent / "c" / "reference.c"
    subprocess.run(cc + ["-std=c11", "-O0", str(src), "-o", str(exe)] + flags +
                   ["-llgd", "-lm"], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    res: Dict[str, List[int]] = {}
    for line in out.splitlines():
        name, _, bits = line.split()
        res.setdefault(name, []).append(int(bits, 16))
    return {k: np.array(v, dtype=np.uint32) for k, v in res.items()}


def bits(a) -> np.ndarray:
    """The float32 bit patterns of a (flattened)."""
    return np.ascontiguousarray(np.asarray(a, dtype=np.float32)).reshape(-1).view(np.uint32)


def read_safetensors(path: Path) -> Dict[str, np.ndarray]:
    """The F32 tensors of a safetensors file (8-byte header length, JSON, data)."""
    import json
    raw = path.read_bytes()
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    data = raw[8 + n:]
    out = {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        a, b = v["data_offsets"]
        out[k] = np.frombuffer(data[a:b], dtype="<f4").reshape(v["shape"]).copy()
    return out
