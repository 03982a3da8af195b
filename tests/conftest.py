import sys
from pathlib import Path

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


@pytest.fixture(scope="session", params=[pytest.param("samples", marks=needs_samples), "synthetic"])
def source(request, tmp_path_factory):
    """The scanner session an end-to-end test runs on: the real XA30 samples (skipped,
    with the reason, where they are absent) and a synthetic one made by the tests."""
    if request.param == "samples":
        return sample_session()
    return synthetic_session(tmp_path_factory.mktemp("synthetic-dicom"))


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL server for the module's tests (skipped, with the
    reason, only where it cannot be installed); stopped and deleted afterwards."""
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
