import os
import sys
from pathlib import Path

# bidsport's own exceptions (bugs) fail loudly in tests, in-process and in every
# workflow the tests start, instead of failing only their series.
os.environ["BIDSPORT_STRICT"] = "1"

# The bidsport package lives in scripts/ (installed editable by .ci/run; this
# keeps the tests working from a plain checkout too).
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
sys.path.insert(0, str(Path(__file__).resolve().parent))


import pytest  # noqa: E402

from helpers import needs_samples, sample_session, synthetic_session  # noqa: E402


@pytest.fixture(scope="session")
def slurm():
    """A real single-node SLURM, started once for every test that needs it (skipped,
    with the reason, only where it cannot be installed); stopped at the end."""
    from slurm_cluster import LocalSlurm, SlurmUnavailable

    try:
        cluster = LocalSlurm().start()
    except SlurmUnavailable as exc:
        pytest.skip(f"no local SLURM cluster: {exc}")
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def synthetic(tmp_path_factory):
    """The synthetic scanner session (made once): for tests where the vendor's data
    does not matter."""
    return synthetic_session(tmp_path_factory.mktemp("synthetic-dicom"))


@pytest.fixture(scope="session", params=[pytest.param("samples", marks=needs_samples), "synthetic"])
def source(request):
    """The scanner session a test whose outcome depends on real vendor data runs on:
    the real XA30 samples (skipped, with the reason, where they are absent) and the
    synthetic one, so a clone alone still runs it."""
    if request.param == "samples":
        return sample_session()
    return request.getfixturevalue("synthetic")


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL server shared by the session's tests (skipped, with the
    reason, only where it cannot be installed); stopped and deleted afterwards. Each
    test module creates databases of its own name on it."""
    from pg_server import LocalPostgres, PostgresUnavailable

    server = LocalPostgres()
    try:
        server.start()
    except PostgresUnavailable as exc:
        pytest.skip(f"no PostgreSQL server: {exc}")
    try:
        yield server
    finally:
        server.stop()


# Markers that follow from what a test uses, so `-m "not browser"` and the like
# select by need without every test repeating it (registered in pyproject.toml).
FIXTURE_MARKERS = {"postgres": "postgres", "browser": "browser", "slurm": "slurm"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for fixture, marker in FIXTURE_MARKERS.items():
            if fixture in item.fixturenames:
                item.add_marker(marker)
        if item.get_closest_marker("slurm") and not item.get_closest_marker("slow"):
            item.add_marker("slow")  # it starts a cluster's daemons: never in the quick loop
        callspec = getattr(item, "callspec", None)
        on_samples = callspec is not None and callspec.params.get("source") == "samples"
        if on_samples or any(m.kwargs.get("reason") == needs_samples.kwargs["reason"] for m in item.iter_markers("skipif")):
            item.add_marker("samples")
