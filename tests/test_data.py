import functools
import hashlib
import http.server
import io
import socket
import tarfile
import threading
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from dltheory import data


def test_digits_split_and_standardization():
    ds = data.digits(test_fraction=0.25, seed=1)
    n = ds.x_train.shape[0] + ds.x_test.shape[0]
    assert n == 1797 and ds.x_train.shape[1] == 64
    assert abs(ds.x_test.shape[0] - 0.25 * n) <= 1
    assert ds.x_train.dtype == jnp.float32 and ds.y_train.dtype == jnp.int32
    assert ds.num_classes == 10
    np.testing.assert_allclose(np.asarray(ds.x_train).mean(0), 0, atol=1e-5)
    std = np.asarray(ds.x_train).std(0)
    assert np.all((np.abs(std - 1) < 1e-4) | (std == 0))  # constant border pixels stay 0
    # stratified: every class in both splits in nearly equal proportion
    tr, te = np.bincount(ds.y_train) / len(ds.y_train), np.bincount(ds.y_test) / len(ds.y_test)
    assert np.abs(tr - te).max() < 0.01


def test_digits_is_deterministic_and_keeps_classes():
    a, b = data.digits(seed=3), data.digits(seed=3)
    np.testing.assert_array_equal(a.x_train, b.x_train)
    two = data.digits(classes=(3, 8))
    assert set(np.unique(two.y_train)) == {0, 1}
    raw = data.digits(standardize=False)
    assert float(raw.x_train.max()) == 16.0


@pytest.mark.parametrize("kwargs, words", [
    (dict(test_fraction=1.0), "`test_fraction` must lie in (0.0, 1.0)"),
    (dict(test_fraction=0.0), "`test_fraction` must lie in (0.0, 1.0)"),
    (dict(classes=(1,)), "`classes` must name at least two distinct classes"),
    (dict(classes=(1, 1)), "`classes` must name at least two distinct classes"),
    (dict(classes=(1, 12)), "`classes[i]` must be an integer <= 9"),
])
def test_digits_rejects_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as err:
        data.digits(**kwargs)
    assert words in str(err.value)


def test_minibatches_visit_every_example_once_per_epoch():
    x = jnp.arange(10.0)[:, None]
    mb = data.Minibatches.of({"x": x, "y": jnp.arange(10)}, 3)
    assert mb.steps_per_epoch == 3
    key = jax.random.key(0)
    sample = jax.jit(mb.sample)
    epoch0 = np.concatenate([np.asarray(sample(key, k)["y"]) for k in range(3)])
    epoch1 = np.concatenate([np.asarray(sample(key, k)["y"]) for k in range(3, 6)])
    assert len(set(epoch0)) == 9 and len(set(epoch1)) == 9  # one example left over each epoch
    assert not np.array_equal(epoch0, epoch1)  # a new permutation per epoch
    b = sample(key, 4)
    np.testing.assert_array_equal(np.asarray(b["x"][:, 0]), np.asarray(b["y"]))  # rows stay paired


@pytest.mark.parametrize("start,length,limit", [(0, 7, None), (5, 11, None), (4, 9, 1)])
def test_minibatches_plan_takes_the_batches_sample_takes(start, length, limit, monkeypatch):
    """The engine's chunk plan (each epoch's permutation drawn once) gives exactly the
    batches of ``sample`` step by step, across epoch boundaries and in the fallback that
    draws the permutations one step at a time."""
    if limit is not None:
        monkeypatch.setattr(data, "_PLAN_MAX_INDICES", limit)
    mb = data.Minibatches.of({"x": jnp.arange(10.0)[:, None] * 2, "y": jnp.arange(10)}, 3)
    key = jax.random.key(3)
    plan = jax.jit(data.plan_batches, static_argnums=3)(mb, key, jnp.asarray(start), length)
    assert plan.shape == (length, 3)
    for j in range(length):
        got = data.take_batch(mb, key, plan[j])
        want = mb.sample(key, jnp.asarray(start + j))
        for name in ("x", "y"):
            np.testing.assert_array_equal(np.asarray(got[name]), np.asarray(want[name]))


def test_plan_of_a_source_without_one_is_its_steps():
    full = data.FullBatch({"x": jnp.ones(2)})
    np.testing.assert_array_equal(np.asarray(data.plan_batches(full, jax.random.key(0),
                                                               jnp.asarray(4), 3)), [4, 5, 6])


def test_minibatches_validation():
    with pytest.raises(ValueError, match=r"`batch_size` must be an integer <= 10; got 11"):
        data.Minibatches.of({"x": jnp.zeros((10, 2))}, 11)
    with pytest.raises(ValueError, match="one common leading size"):
        data.Minibatches.of({"x": jnp.zeros((10, 2)), "y": jnp.zeros(9)}, 2)


def test_quadratic_has_the_requested_spectrum():
    lam = [0.5, 1.5, 4.0]
    h = data.quadratic(lam, rotate=True, key=3)
    np.testing.assert_allclose(np.asarray(h), np.asarray(h).T, atol=1e-7)
    np.testing.assert_allclose(np.linalg.eigvalsh(np.asarray(h, np.float64)), lam, rtol=1e-5)
    assert not np.allclose(np.asarray(h), np.diag(lam))  # really rotated
    np.testing.assert_array_equal(data.quadratic([1.0, 2.0]), np.diag([1.0, 2.0]))
    with pytest.raises(ValueError, match="`eigenvalues` must be a non-empty 1-D sequence"):
        data.quadratic([])
    with pytest.raises(ValueError, match="`eigenvalues` must be finite"):
        data.quadratic([1.0, np.inf])


def test_linear_regression_teacher():
    d = data.linear_regression(200, 5, noise=0.0, key=1)
    np.testing.assert_allclose(d["x"] @ d["w_star"], d["y"], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="`noise` must be a finite number >= 0"):
        data.linear_regression(10, 2, noise=-1.0)


# --------------------------------------------------------------------------------------
# CIFAR-10 reader, tested offline on a stand-in in the same on-disk format
# --------------------------------------------------------------------------------------


def test_cifar10_reads_the_on_disk_format(tmp_path):
    import pickle

    folder = data.write_cifar10_standin(tmp_path, n_train=7, n_test=5, seed=3)
    ds = data.cifar10(tmp_path, standardize=False)
    assert ds.x_train.shape == (35, 32, 32, 3) and ds.x_test.shape == (5, 32, 32, 3)
    assert ds.x_train.dtype == jnp.float32 and ds.y_train.dtype == jnp.int32
    # Pixel (row 4, column 9) of channel 1 of the first image sits at 1024 + 4*32 + 9.
    with open(folder / "data_batch_1", "rb") as f:
        raw = pickle.load(f, encoding="bytes")
    assert float(ds.x_train[0, 4, 9, 1]) == pytest.approx(raw[b"data"][0, 1024 + 4 * 32 + 9] / 255)
    assert ds.y_train[:7].tolist() == raw[b"labels"]
    std = data.cifar10(tmp_path)
    np.testing.assert_allclose(np.asarray(std.x_train).mean(axis=(0, 1, 2)), 0, atol=1e-5)
    np.testing.assert_allclose(np.asarray(std.x_train).std(axis=(0, 1, 2)), 1, atol=1e-4)


def test_cifar10_limit_and_classes(tmp_path):
    data.write_cifar10_standin(tmp_path, n_train=20, n_test=30)
    ds = data.cifar10(tmp_path, limit=8)
    assert ds.x_train.shape[0] == 8 and ds.x_test.shape[0] == 8
    two = data.cifar10(tmp_path, classes=(3, 5))
    assert set(np.unique(np.asarray(two.y_train)).tolist()) <= {0, 1}
    with pytest.raises(ValueError, match="classes"):
        data.cifar10(tmp_path, classes=(3,))


def test_cifar10_missing_files_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("DLTHEORY_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="download=True"):
        data.cifar10()


# --------------------------------------------------------------------------------------
# CIFAR-10 download, tested against a local HTTP server on 127.0.0.1
# --------------------------------------------------------------------------------------


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves files from a folder, counts requests, and under ``/truncated/`` announces
    a file's full size but sends only its first half."""

    def do_GET(self):
        self.server.hits.append(self.path)
        if self.path.startswith("/truncated/"):
            body = (Path(self.directory) / self.path.removeprefix("/truncated/")).read_bytes()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[:len(body) // 2])
            return
        super().do_GET()

    def log_message(self, *args):
        pass


@pytest.fixture
def server(tmp_path):
    """A local file server on 127.0.0.1: ``(folder it serves, base url, request log)``."""
    folder = tmp_path / "served"
    folder.mkdir()
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Handler, directory=str(folder)))
    httpd.hits = []
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{httpd.server_address[1]}", httpd.hits
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty data folder, downloads quiet and bounded in time."""
    monkeypatch.setenv("DLTHEORY_PROGRESS", "0")
    monkeypatch.setattr(data, "_DOWNLOAD_TIMEOUT", 10.0)
    return tmp_path / "cache"


def _standin_archive(path, tmp_path, *, members=None):
    """A tar.gz of a stand-in ``cifar-10-batches-py`` folder; returns its MD5."""
    folder = data.write_cifar10_standin(tmp_path / "standin", n_train=4, n_test=3)
    with tarfile.open(path, "w:gz") as tar:
        tar.add(folder, arcname="cifar-10-batches-py")
        for info, payload in members or []:
            tar.addfile(info, io.BytesIO(payload))
    return hashlib.md5(path.read_bytes()).hexdigest()


def _point_at(monkeypatch, url, md5):
    monkeypatch.setenv("DLTHEORY_CIFAR10_URL", url)
    monkeypatch.setattr(data, "CIFAR10_MD5", md5)


def _left_in(folder):
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_cifar10_download_verifies_unpacks_and_caches(server, cache, tmp_path, monkeypatch):
    served, base, hits = server
    md5 = _standin_archive(served / "cifar-10-python.tar.gz", tmp_path)
    _point_at(monkeypatch, f"{base}/cifar-10-python.tar.gz", md5)
    monkeypatch.setenv("DLTHEORY_PROGRESS", "1")  # the progress bar path, too
    ds = data.cifar10(cache, download=True)
    assert ds.x_train.shape == (20, 32, 32, 3) and ds.x_test.shape == (3, 32, 32, 3)
    assert ds.y_train.dtype == jnp.int32
    assert _left_in(cache) == ["cifar-10-batches-py", "cifar-10-python.tar.gz"]
    assert len(hits) == 1
    again = data.cifar10(cache, download=True)
    np.testing.assert_array_equal(np.asarray(again.x_train), np.asarray(ds.x_train))
    assert len(hits) == 1  # served from the cache


def test_cifar10_download_replaces_a_damaged_cached_archive(server, cache, tmp_path,
                                                            monkeypatch):
    served, base, hits = server
    md5 = _standin_archive(served / "cifar-10-python.tar.gz", tmp_path)
    _point_at(monkeypatch, f"{base}/cifar-10-python.tar.gz", md5)
    cache.mkdir()
    (cache / "cifar-10-python.tar.gz").write_bytes(b"not the archive")
    assert data.cifar10(cache, download=True).x_test.shape == (3, 32, 32, 3)
    assert len(hits) == 1
    assert hashlib.md5((cache / "cifar-10-python.tar.gz").read_bytes()).hexdigest() == md5


def test_cifar10_download_rejects_a_wrong_checksum(server, cache, tmp_path, monkeypatch):
    served, base, _ = server
    _standin_archive(served / "cifar-10-python.tar.gz", tmp_path)
    url = f"{base}/cifar-10-python.tar.gz"
    _point_at(monkeypatch, url, "0" * 32)
    with pytest.raises(ValueError) as err:
        data.cifar10(cache, download=True)
    message = str(err.value)
    assert "checksum" in message and url in message and "0" * 32 in message
    assert "deleted" in message
    assert _left_in(cache) == []


def test_cifar10_download_rejects_a_truncated_file(server, cache, tmp_path, monkeypatch):
    served, base, _ = server
    md5 = _standin_archive(served / "cifar-10-python.tar.gz", tmp_path)
    _point_at(monkeypatch, f"{base}/truncated/cifar-10-python.tar.gz", md5)
    with pytest.raises(OSError, match="truncated"):
        data.cifar10(cache, download=True)
    assert _left_in(cache) == []


def test_cifar10_download_rejects_a_corrupt_archive(server, cache, monkeypatch):
    served, base, _ = server
    garbage = np.random.default_rng(0).bytes(5000)
    (served / "cifar-10-python.tar.gz").write_bytes(garbage)
    _point_at(monkeypatch, f"{base}/cifar-10-python.tar.gz", hashlib.md5(garbage).hexdigest())
    with pytest.raises(ValueError, match="not a valid CIFAR-10 archive"):
        data.cifar10(cache, download=True)
    assert _left_in(cache) == []


@pytest.mark.parametrize("filters", [True, False])
def test_cifar10_download_refuses_paths_outside_the_folder(server, cache, tmp_path,
                                                          monkeypatch, filters):
    if not filters:  # as on a Python without tarfile extraction filters
        monkeypatch.delattr(tarfile, "data_filter", raising=False)
    elif not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python has no tarfile extraction filters")
    served, base, _ = server
    evil = tarfile.TarInfo("../escaped.txt")
    evil.size = 3
    md5 = _standin_archive(served / "cifar-10-python.tar.gz", tmp_path,
                           members=[(evil, b"bad")])
    _point_at(monkeypatch, f"{base}/cifar-10-python.tar.gz", md5)
    with pytest.raises(ValueError):
        data.cifar10(cache, download=True)
    assert _left_in(cache) == [] and not (tmp_path / "escaped.txt").exists()


@pytest.mark.parametrize("name, kind, link", [
    ("../x", tarfile.REGTYPE, ""), ("/etc/x", tarfile.REGTYPE, ""),
    ("a/../../x", tarfile.REGTYPE, ""), ("a/link", tarfile.SYMTYPE, "../../x"),
    ("a/link", tarfile.SYMTYPE, "/etc/passwd"), ("dev", tarfile.CHRTYPE, ""),
])
def test_member_check_without_extraction_filters(name, kind, link):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, link
    with pytest.raises(ValueError, match=repr(name)):
        data._check_member(info)
    for ok in (tarfile.TarInfo("cifar-10-batches-py/data_batch_1"),
               tarfile.TarInfo("cifar-10-batches-py")):
        data._check_member(ok)


def test_cifar10_download_reports_an_unreachable_server(cache, monkeypatch):
    with socket.socket() as s:  # a port on 127.0.0.1 that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cifar-10-python.tar.gz"
    _point_at(monkeypatch, url, "0" * 32)
    with pytest.raises(OSError) as err:
        data.cifar10(cache, download=True)
    message = str(err.value)
    assert "download" in message and "failed" in message and url in message
    assert "DLTHEORY_DATA" in message
    assert _left_in(cache) == []


def test_cifar10_download_reports_a_missing_file(server, cache, monkeypatch):
    _, base, _ = server
    _point_at(monkeypatch, f"{base}/nothing-here.tar.gz", "0" * 32)
    with pytest.raises(OSError, match="HTTP 404"):
        data.cifar10(cache, download=True)
    assert _left_in(cache) == []
