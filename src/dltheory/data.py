"""Data the chapters train on: small real data offline, synthetic problems, batch sources.

Nothing here downloads anything unless asked. The real dataset the chapters use is
scikit-learn's bundled copy of the UCI handwritten digits (1,797 images of 8x8 pixels,
10 classes), which ships inside the scikit-learn wheel. The ``paper`` presets read
CIFAR-10 from disk with :func:`cifar10` (``download=True`` fetches it once, on Colab);
:func:`write_cifar10_standin` writes a tiny random file set in the same format for
offline tests.

A *batch source* is a small pytree (its arrays are traced, its sizes are static) with a
method ``sample(key, step) -> batch`` that the training engine calls on device inside
its ``lax.scan``. :class:`FullBatch` returns the same data at every step;
:class:`Minibatches` draws shuffled minibatches epoch by epoch.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pickle
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dltheory import validation as V

__all__ = [
    "Dataset",
    "digits",
    "cifar10",
    "write_cifar10_standin",
    "CIFAR10_URL",
    "CIFAR10_MD5",
    "FullBatch",
    "Minibatches",
    "is_batch_source",
    "plan_batches",
    "take_batch",
    "quadratic",
    "linear_regression",
]


class Dataset(NamedTuple):
    """A train/test split: ``x_*`` of shape ``(n, d)`` float32, ``y_*`` of shape ``(n,)`` int32."""

    x_train: jax.Array
    y_train: jax.Array
    x_test: jax.Array
    y_test: jax.Array

    @property
    def num_classes(self) -> int:
        return int(max(int(self.y_train.max()), int(self.y_test.max())) + 1)

    @property
    def train(self) -> dict[str, jax.Array]:
        """The training split as one batch, ``{"x": ..., "y": ...}``."""
        return {"x": self.x_train, "y": self.y_train}

    @property
    def test(self) -> dict[str, jax.Array]:
        """The test split as one batch, ``{"x": ..., "y": ...}``."""
        return {"x": self.x_test, "y": self.y_test}


def _check_classes(classes: Any) -> tuple[int, ...]:
    """A subset of the ten classes (0-9): at least two, distinct."""
    if isinstance(classes, (str, bytes)) or not hasattr(classes, "__iter__"):
        raise TypeError(f"argument `classes` must be a sequence of class indices (0 to 9); "
                        f"got {classes!r}")
    classes = tuple(classes)
    for c in classes:
        V.check_int("classes[i]", c, minimum=0, maximum=9)
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise ValueError(f"argument `classes` must name at least two distinct classes "
                         f"(0 to 9); got {classes!r}")
    return classes


def digits(*, test_fraction: float = 0.2, seed: int = 0, standardize: bool = True,
           classes: tuple[int, ...] | None = None) -> Dataset:
    """scikit-learn's bundled handwritten digits, split and standardized.

    Args:
      test_fraction: fraction of the examples held out for testing, in (0, 1).
      seed: seed of the stratified split.
      standardize: subtract the training mean and divide by the training standard
        deviation per pixel (constant pixels are left at zero).
      classes: keep only these digit classes, relabelled ``0..len(classes)-1``
        (for example ``(0, 1)`` for a binary task).

    Returns:
      A :class:`Dataset` (features 64-dimensional, float32; labels int32).

    References:
      Alpaydin, Kaynak (1998), Optical Recognition of Handwritten Digits, UCI ML
      Repository; scikit-learn's ``load_digits``.
    """
    V.check_in_range("test_fraction", test_fraction, 0.0, 1.0,
                     low_inclusive=False, high_inclusive=False)
    seed = V.check_int("seed", seed, minimum=0)
    if classes is not None:
        classes = _check_classes(classes)

    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    if classes is not None:
        keep = np.isin(y, classes)
        x, y = x[keep], np.searchsorted(np.array(sorted(classes)), y[keep])
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=test_fraction,
                                              random_state=seed, stratify=y)
    if standardize:
        mean, std = x_tr.mean(0), x_tr.std(0)
        std = np.where(std > 0, std, 1.0)
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    return Dataset(jnp.asarray(x_tr, jnp.float32), jnp.asarray(y_tr, jnp.int32),
                   jnp.asarray(x_te, jnp.float32), jnp.asarray(y_te, jnp.int32))


#: Where :func:`cifar10` fetches the data set when ``download=True``. The environment
#: variable ``DLTHEORY_CIFAR10_URL`` names another address (a mirror of the same file).
CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
#: Published MD5 checksum of ``cifar-10-python.tar.gz``; a download must match it.
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
#: Environment variable that replaces :data:`CIFAR10_URL` as the download address.
CIFAR10_URL_ENV_VAR = "DLTHEORY_CIFAR10_URL"
_CIFAR_DIR = "cifar-10-batches-py"
_CIFAR_ARCHIVE = "cifar-10-python.tar.gz"
_CIFAR_TRAIN = tuple(f"data_batch_{i}" for i in range(1, 6))
_CIFAR_TEST = "test_batch"
#: Seconds a download waits for the server to connect or to send the next block.
_DOWNLOAD_TIMEOUT = 60.0
_DOWNLOAD_BLOCK = 1 << 20


def _data_root(root: Any) -> Path:
    if root is None:
        root = os.environ.get("DLTHEORY_DATA") or Path.home() / ".cache" / "dltheory"
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"argument `root` must be a folder (a str or a path); got {root!r}")
    return Path(root).expanduser()


def _read_cifar_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with open(path, "rb") as f:
        batch = pickle.load(f, encoding="bytes")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if data is None or labels is None:
        raise ValueError(f"{path} is not a CIFAR-10 batch file (no 'data'/'labels' keys)")
    x = np.asarray(data, np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return x, np.asarray(labels, np.int64)



def _md5_of_file(path: Path) -> str:
    import hashlib

    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(_DOWNLOAD_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


def _by_hand(root: Path) -> str:
    return (f"To install the data by hand, unpack {_CIFAR_ARCHIVE} so that "
            f"{root / _CIFAR_DIR} holds {', '.join(_CIFAR_TRAIN)} and {_CIFAR_TEST}, "
            f"or point DLTHEORY_DATA (or the `root` argument) at a folder that does.")


def _fetch(url: str, dest: Path, *, md5: str, timeout: float) -> None:
    """Stream ``url`` into ``dest`` through a temporary file beside it, checking its MD5.

    The bytes go to a ``.part`` file in ``dest``'s folder, which is renamed to ``dest``
    only once the whole body has arrived and its checksum matches; on any failure the
    ``.part`` file is deleted, so ``dest`` is either complete and verified or absent.

    Args:
      url: address of the file.
      dest: where the verified file ends up.
      md5: expected MD5 checksum, hexadecimal.
      timeout: seconds to wait for the connection and for each block of data.

    Raises:
      OSError: when the server cannot be reached, answers with an error status, stops
        sending before the announced size, or the file cannot be written.
      ValueError: when the checksum of the received file differs from ``md5``.
    """
    import hashlib
    import http.client
    import sys
    import tempfile
    import urllib.error
    import urllib.request

    from dltheory.config import progress_bars

    digest = hashlib.md5(usedforsecurity=False)
    fd, part_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".",
                                     suffix=".part")
    part = Path(part_name)
    bar = None
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    length = response.headers.get("Content-Length")
                    total = int(length) if length and length.isdigit() else None
                    size = ("" if total is None else f" ({total} bytes)" if total < 1 << 20
                            else f" ({total / (1 << 20):.0f} MB)")
                    print(f"downloading CIFAR-10{size} from {url} to {dest.parent} ...")
                    if total and progress_bars():
                        from tqdm.auto import tqdm

                        bar = tqdm(total=total, desc="CIFAR-10", unit="B", unit_scale=True,
                                   unit_divisor=1024, file=sys.stderr, leave=False)
                    received = 0
                    while block := response.read(_DOWNLOAD_BLOCK):
                        out.write(block)
                        digest.update(block)
                        received += len(block)
                        if bar is not None:
                            bar.update(len(block))
            except urllib.error.HTTPError as err:
                raise OSError(f"downloading {url} failed: the server answered HTTP "
                              f"{err.code} {err.reason}. {_by_hand(dest.parent)}") from err
            except http.client.IncompleteRead as err:
                raise OSError(f"downloading {url} failed: the download is truncated "
                              f"({err}); the partial file was deleted. Try again. "
                              f"{_by_hand(dest.parent)}") from err
            except (urllib.error.URLError, http.client.HTTPException, OSError) as err:
                reason = getattr(err, "reason", None) or err
                raise OSError(f"downloading {url} failed: {reason}. "
                              f"{_by_hand(dest.parent)}") from err
        if total is not None and received != total:
            raise OSError(f"downloading {url} failed: the download is truncated, "
                          f"{received} of {total} bytes arrived; the partial file was "
                          f"deleted. Try again. {_by_hand(dest.parent)}")
        got = digest.hexdigest()
        if got != md5.lower():
            raise ValueError(f"MD5 checksum mismatch for {url}: expected {md5.lower()}, "
                             f"received {got}; the downloaded file was deleted. The "
                             f"download is damaged or the server sent another file. "
                             f"{_by_hand(dest.parent)}")
        os.replace(part, dest)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        if bar is not None:
            bar.close()


def _check_member(member: Any) -> None:
    """Refuse a tar member that would land outside the extraction folder or is not a
    plain file, folder or link inside it (for Pythons without extraction filters)."""
    import posixpath

    name = member.name
    parts = posixpath.normpath(name).split("/")
    if name.startswith(("/", "\\")) or ".." in parts or ":" in parts[0]:
        raise ValueError(f"archive member {name!r} points outside the extraction folder")
    if member.issym() or member.islnk():
        target = member.linkname
        if member.issym():
            target = posixpath.join(posixpath.dirname(name), target)
        target_parts = posixpath.normpath(target).split("/")
        if target.startswith(("/", "\\")) or ".." in target_parts:
            raise ValueError(f"archive member {name!r} links outside the extraction "
                             f"folder ({member.linkname!r})")
    elif not (member.isfile() or member.isdir()):
        raise ValueError(f"archive member {name!r} is not a regular file or folder")


def _extract_cifar10(archive: Path, root: Path) -> None:
    """Unpack ``cifar-10-batches-py`` from ``archive`` into ``root``, all or nothing.

    The archive is unpacked into a temporary folder inside ``root`` (refusing members
    that would land outside it) and its batch files are moved into ``root /
    cifar-10-batches-py`` only once all of them are present.

    Raises:
      ValueError: when the archive is not a readable tar.gz file or lacks batch files.
    """
    import gzip
    import shutil
    import tarfile
    import tempfile
    import zlib

    staging = Path(tempfile.mkdtemp(dir=root, prefix=".cifar-10-extract-"))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tar:
                if hasattr(tarfile, "data_filter"):
                    tar.extractall(staging, filter="data")
                else:  # Python without extraction filters
                    members = tar.getmembers()
                    for member in members:
                        _check_member(member)
                    tar.extractall(staging, members=members)
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise ValueError(f"{archive} is not a valid CIFAR-10 archive ({err}); the "
                             f"file was deleted. {_by_hand(root)}") from err
        unpacked = staging / _CIFAR_DIR
        names = _CIFAR_TRAIN + (_CIFAR_TEST,)
        lacking = [n for n in names if not (unpacked / n).is_file()]
        if lacking:
            raise ValueError(f"{archive} lacks {_CIFAR_DIR}/{', '.join(lacking)}; the "
                             f"file was deleted. {_by_hand(root)}")
        folder = root / _CIFAR_DIR
        if folder.exists():  # an incomplete folder: complete it file by file
            for n in names:
                os.replace(unpacked / n, folder / n)
        else:
            os.replace(unpacked, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _download_cifar10(root: Path, *, url: str | None = None, md5: str | None = None,
                      timeout: float | None = None) -> None:
    """Fetch, verify and unpack the CIFAR-10 archive into ``root``.

    An archive already in ``root`` is used when its checksum matches (and replaced by a
    fresh download when it does not). The download and the unpacking go through
    temporary files and folders inside ``root`` that are renamed into place only when
    complete, so a failure leaves ``root`` as it was.

    Args:
      root: the data folder; ``cifar-10-batches-py/`` is created in it and the archive
        ``cifar-10-python.tar.gz`` kept beside it.
      url: address of the archive; default ``$DLTHEORY_CIFAR10_URL`` or
        :data:`CIFAR10_URL`.
      md5: expected MD5 checksum of the archive; default :data:`CIFAR10_MD5`.
      timeout: seconds to wait for the connection and for each block of data; default
        60.

    Raises:
      OSError: when the download fails (server unreachable, error status, connection
        cut short); the message says how to install the files by hand.
      ValueError: when the archive's checksum differs from ``md5`` or the archive is
        not a readable CIFAR-10 tar.gz file; the archive is deleted.
    """
    url = url or os.environ.get(CIFAR10_URL_ENV_VAR) or CIFAR10_URL
    md5 = (md5 or CIFAR10_MD5).lower()
    timeout = _DOWNLOAD_TIMEOUT if timeout is None else timeout
    root.mkdir(parents=True, exist_ok=True)
    archive = root / _CIFAR_ARCHIVE
    if archive.exists() and _md5_of_file(archive) != md5:
        print(f"{archive} does not have the expected MD5 checksum {md5}; downloading "
              f"it again")
        archive.unlink()
    if not archive.exists():
        _fetch(url, archive, md5=md5, timeout=timeout)
    try:
        _extract_cifar10(archive, root)
    except ValueError:  # the archive itself is unusable: do not keep it
        archive.unlink(missing_ok=True)
        raise


def cifar10(root: str | os.PathLike | None = None, *, download: bool = False,
            standardize: bool = True, limit: int | None = None,
            classes: tuple[int, ...] | None = None) -> Dataset:
    """CIFAR-10 from the standard ``cifar-10-batches-py`` pickle files.

    Args:
      root: folder holding ``cifar-10-batches-py/``; default ``$DLTHEORY_DATA`` or
        ``~/.cache/dltheory``.
      download: fetch and unpack the archive from :data:`CIFAR10_URL` (or
        ``$DLTHEORY_CIFAR10_URL``) when it is missing (163 MB; for Colab and GPU
        machines). The archive must have the MD5 checksum :data:`CIFAR10_MD5`; it is
        kept in ``root`` and unpacked there.
      standardize: subtract the per-channel training mean and divide by the
        per-channel training standard deviation; otherwise scale pixels to [0, 1].
      limit: keep only the first ``limit`` training and ``limit`` test images (for
        smoke runs).
      classes: keep only these classes, relabelled ``0..len(classes)-1``.

    Returns:
      A :class:`Dataset` with images ``(n, 32, 32, 3)`` float32 (NHWC) and int32 labels.

    Raises:
      FileNotFoundError: when the files are missing and ``download`` is false.
      OSError: when the download fails; nothing partial is left in ``root``.
      ValueError: when the downloaded archive has the wrong checksum or is not a
        CIFAR-10 archive; it is deleted.

    References:
      Krizhevsky (2009), Learning Multiple Layers of Features from Tiny Images.
    """
    if limit is not None:
        limit = V.check_int("limit", limit, minimum=1)
    if classes is not None:
        classes = _check_classes(classes)
    folder = _data_root(root) / _CIFAR_DIR
    missing = [n for n in _CIFAR_TRAIN + (_CIFAR_TEST,) if not (folder / n).exists()]
    if missing and download:
        _download_cifar10(folder.parent)
        missing = [n for n in _CIFAR_TRAIN + (_CIFAR_TEST,) if not (folder / n).exists()]
    if missing:
        url = os.environ.get(CIFAR10_URL_ENV_VAR) or CIFAR10_URL
        raise FileNotFoundError(
            f"CIFAR-10 not found: {folder} lacks {', '.join(missing)}. Pass "
            f"download=True (fetches {url}), set DLTHEORY_DATA, or pass `root`.")
    parts = [_read_cifar_batch(folder / n) for n in _CIFAR_TRAIN]
    x_tr = np.concatenate([p[0] for p in parts])
    y_tr = np.concatenate([p[1] for p in parts])
    x_te, y_te = _read_cifar_batch(folder / _CIFAR_TEST)
    if classes is not None:
        order = np.array(sorted(classes))
        keep_tr, keep_te = np.isin(y_tr, classes), np.isin(y_te, classes)
        x_tr, y_tr = x_tr[keep_tr], np.searchsorted(order, y_tr[keep_tr])
        x_te, y_te = x_te[keep_te], np.searchsorted(order, y_te[keep_te])
    if limit is not None:
        x_tr, y_tr, x_te, y_te = x_tr[:limit], y_tr[:limit], x_te[:limit], y_te[:limit]
    x_tr = x_tr.astype(np.float32) / 255.0
    x_te = x_te.astype(np.float32) / 255.0
    if standardize:
        mean = x_tr.mean(axis=(0, 1, 2))
        std = x_tr.std(axis=(0, 1, 2))
        std = np.where(std > 0, std, 1.0)
        x_tr, x_te = (x_tr - mean) / std, (x_te - mean) / std
    return Dataset(jnp.asarray(x_tr, jnp.float32), jnp.asarray(y_tr, jnp.int32),
                   jnp.asarray(x_te, jnp.float32), jnp.asarray(y_te, jnp.int32))


def write_cifar10_standin(root: str | os.PathLike, *, n_train: int = 50,
                          n_test: int = 20, seed: int = 0) -> Path:
    """Write a tiny random data set in CIFAR-10's on-disk format, for offline tests.

    Five training batch files of ``n_train`` images each and one test file of
    ``n_test`` images, random pixels and labels, laid out exactly as the real
    ``cifar-10-batches-py`` (pickled dicts with ``b"data"`` of shape ``(n, 3072)``
    uint8 in channel-major order and ``b"labels"``). Returns the folder written.
    """
    n_train = V.check_int("n_train", n_train, minimum=1)
    n_test = V.check_int("n_test", n_test, minimum=1)
    rng = np.random.default_rng(V.check_seed("seed", seed))
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"argument `root` must be a folder (a str or a path); got {root!r}")
    folder = Path(root) / _CIFAR_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in [(b, n_train) for b in _CIFAR_TRAIN] + [(_CIFAR_TEST, n_test)]:
        batch = {b"batch_label": name.encode(),
                 b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"filenames": [f"standin_{i}.png".encode() for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    return folder


# --------------------------------------------------------------------------------------
# Batch sources
# --------------------------------------------------------------------------------------


def is_batch_source(obj: Any) -> bool:
    """Whether ``obj`` has a ``sample(key, step)`` method the engine can call."""
    return callable(getattr(obj, "sample", None))


def _check_source(source: Any) -> None:
    if not is_batch_source(source):
        raise TypeError(f"argument `source` must be a batch source (an object with a "
                        f"sample(key, step) method, such as FullBatch or Minibatches); got "
                        f"{type(source).__name__}")


def plan_batches(source: Any, key: jax.Array, start: jax.Array, length: int) -> Any:
    """What :func:`take_batch` needs for steps ``start, ..., start + length - 1``.

    The engine calls this once per compiled chunk, before its ``lax.scan``, so a source
    can do once what would otherwise be repeated at every step (:class:`Minibatches`
    draws each epoch's permutation once instead of once per step). A source opts in with
    ``plan(key, start, length)`` and ``take(key, item)`` methods; for any other source the plan
    is the step numbers and :func:`take_batch` calls ``sample(key, step)``. Either way
    ``take_batch(source, key, plan[j])`` equals ``source.sample(key, start + j)``.

    Returns:
      a pytree whose leaves have leading axis ``length``.
    """
    _check_source(source)
    key = V.check_key("key", key)
    length = V.check_int("length", length, minimum=1)
    if callable(getattr(source, "plan", None)):
        return source.plan(key, start, length)
    return start + jnp.arange(length, dtype=jnp.asarray(start).dtype)


def take_batch(source: Any, key: jax.Array, item: Any) -> Any:
    """The batch of one step from one entry of :func:`plan_batches`'s plan."""
    _check_source(source)
    key = V.check_key("key", key)
    if callable(getattr(source, "plan", None)):
        return source.take(key, item)
    return source.sample(key, item)


@jax.tree_util.register_dataclass
@dataclasses.dataclass(frozen=True)
class FullBatch:
    """The same batch at every step (full-batch gradient descent)."""

    data: Any

    def sample(self, key: jax.Array, step: jax.Array) -> Any:
        return self.data


def _leading_size(data: Any) -> int:
    leaves = jax.tree.leaves(data)
    if not leaves:
        raise ValueError("argument `data` must hold at least one array")
    sizes = {int(np.shape(leaf)[0]) if np.ndim(leaf) else -1 for leaf in leaves}
    if len(sizes) != 1 or -1 in sizes:
        raise ValueError(f"argument `data` must be arrays with one common leading size; "
                         f"got leading sizes {sorted(sizes)}")
    return sizes.pop()


#: :meth:`Minibatches.plan` holds at most this many permuted indices at once (per run of
#: a sweep); beyond it, it draws the permutations step by step as :meth:`~Minibatches.sample`.
_PLAN_MAX_INDICES = 1 << 20


@functools.partial(jax.tree_util.register_dataclass, data_fields=["data"],
                   meta_fields=["batch_size", "size"])
@dataclasses.dataclass(frozen=True)
class Minibatches:
    """Shuffled minibatches, epoch by epoch, drawn on device.

    Step ``k`` belongs to epoch ``k // (size // batch_size)``; each epoch uses a fresh
    permutation of the examples (from ``fold_in(key, epoch)``) and the ``size %
    batch_size`` examples left over at its end are skipped, so every batch has the same
    shape. Build it with :meth:`of`.
    """

    data: Any
    batch_size: int
    size: int

    def __post_init__(self):
        # the static sizes only: the data leaves may be tracers or placeholders when JAX
        # rebuilds the pytree
        V.check_int("size", self.size, minimum=1)
        V.check_int("batch_size", self.batch_size, minimum=1, maximum=self.size)

    @classmethod
    def of(cls, data: Any, batch_size: int) -> "Minibatches":
        """Minibatches of ``batch_size`` from ``data`` (arrays sharing a leading axis)."""
        n = _leading_size(data)
        batch_size = V.check_int("batch_size", batch_size, minimum=1, maximum=n)
        return cls(data, batch_size, n)

    @property
    def steps_per_epoch(self) -> int:
        return self.size // self.batch_size

    def _indices(self, key: jax.Array, step: jax.Array) -> jax.Array:
        per_epoch = self.steps_per_epoch
        epoch, within = step // per_epoch, step % per_epoch
        perm = jax.random.permutation(jax.random.fold_in(key, epoch), self.size)
        return jax.lax.dynamic_slice(perm, (within * self.batch_size,), (self.batch_size,))

    def sample(self, key: jax.Array, step: jax.Array) -> Any:
        return self.take(key, self._indices(key, step))

    def plan(self, key: jax.Array, start: jax.Array, length: int) -> jax.Array:
        """The example indices of steps ``start, ..., start + length - 1``, shape
        ``(length, batch_size)``, drawing each epoch's permutation once (see
        :func:`dltheory.data.plan_batches`). The same indices ``sample`` takes, step by
        step."""
        per_epoch = self.steps_per_epoch
        steps = start + jnp.arange(length, dtype=jnp.asarray(start).dtype)
        n_epochs = (length - 1) // per_epoch + 2  # the most epochs `length` steps can touch
        if n_epochs * self.size > _PLAN_MAX_INDICES:
            # too many permutations to hold at once: one per step, one after another
            return jax.lax.map(lambda s: self._indices(key, s), steps)
        first = start // per_epoch
        perms = jax.vmap(lambda e: jax.random.permutation(jax.random.fold_in(key, first + e),
                                                          self.size))(jnp.arange(n_epochs))
        epoch, within = steps // per_epoch - first, steps % per_epoch
        return jax.vmap(lambda e, w: jax.lax.dynamic_slice(
            perms[e], (w * self.batch_size,), (self.batch_size,)))(epoch, within)

    def take(self, key: jax.Array, idx: jax.Array) -> Any:
        """The examples at ``idx`` (one step of :meth:`plan`; ``key`` is not needed)."""
        return jax.tree.map(lambda a: jnp.take(a, idx, axis=0), self.data)


# --------------------------------------------------------------------------------------
# Synthetic problems
# --------------------------------------------------------------------------------------


def quadratic(eigenvalues: Any, *, rotate: bool = False, key: int | jax.Array = 0,
              dtype: Any = jnp.float32) -> jax.Array:
    """The symmetric matrix ``H = Q diag(eigenvalues) Q^T`` of a quadratic loss.

    The loss ``L(x) = x^T H x / 2`` has gradient ``H x`` and Hessian ``H``.

    Args:
      eigenvalues: 1-D sequence of finite eigenvalues (any sign).
      rotate: if ``True``, ``Q`` is a random orthogonal matrix (from ``key``);
        otherwise ``Q = I`` and ``H`` is diagonal.
      key: seed or PRNG key for the rotation.
      dtype: floating dtype of the result.

    Returns:
      ``H`` of shape ``(d, d)``.
    """
    lam = V.check_array("eigenvalues", eigenvalues, ndim=1)
    k = V.check_key("key", key)
    dtype = _check_float_dtype(dtype)
    h = np.diag(lam)
    if rotate:
        q, r = np.linalg.qr(np.asarray(jax.random.normal(k, (lam.size, lam.size))))
        q = q * np.sign(np.diag(r))
        h = q @ h @ q.T
        h = (h + h.T) / 2
    return jnp.asarray(h, dtype)


def linear_regression(n: int, d: int, *, noise: float = 0.0, key: int | jax.Array = 0,
                      dtype: Any = jnp.float32) -> dict[str, jax.Array]:
    """Gaussian inputs with targets from a random linear teacher.

    ``x ~ N(0, I_d)``, ``w* ~ N(0, I_d / d)``, ``y = x . w* + noise * N(0, 1)``.

    Returns:
      ``{"x": (n, d), "y": (n,), "w_star": (d,)}``.
    """
    n = V.check_int("n", n, minimum=1)
    d = V.check_int("d", d, minimum=1)
    noise = V.check_nonnegative("noise", noise)
    k = V.check_key("key", key)
    dtype = _check_float_dtype(dtype)
    kx, kw, ke = jax.random.split(k, 3)
    x = jax.random.normal(kx, (n, d), dtype)
    w = jax.random.normal(kw, (d,), dtype) / np.sqrt(d)
    y = x @ w + noise * jax.random.normal(ke, (n,), dtype)
    return {"x": x, "y": y, "w_star": w}


def _check_float_dtype(dtype: Any) -> Any:
    try:
        ok = jnp.issubdtype(dtype, jnp.floating)
    except TypeError:
        ok = False
    if not ok:
        raise TypeError(f"argument `dtype` must be a floating dtype such as jnp.float32; got "
                        f"{dtype!r}")
    return dtype
