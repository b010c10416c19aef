"""Worker capabilities: probed on the host, matched to the kinds of task; a cluster that
cannot run a kind of task is a clear error at the start, not a hang."""

from __future__ import annotations

from pathlib import Path

import pytest
from distributed import Client, LocalCluster

from composer.matrix.capability import able, probe, why_not
from composer.matrix.graph import plan_matrix
from composer.matrix.model import Limits, MatrixInfraError
from composer.matrix.run import check_workers, run_graph
from composer.matrix.tasks import Caches

from .matrices import matrix_dir

CAPS = {
    "tcp://a:1": {"host": "a", "build": True, "boot": False, "lacks_build": [], "lacks_boot": ["swtpm"]},
    "tcp://b:1": {"host": "b", "build": False, "boot": False, "lacks_build": ["root"], "lacks_boot": ["UEFI firmware (OVMF)"]},
}  # fmt: skip


def test_this_host_reports_what_it_has() -> None:
    caps = probe()
    assert set(caps) >= {"host", "root", "build", "boot", "lacks_build", "lacks_boot", "accel"}
    assert caps["build"] == (not caps["lacks_build"])
    assert caps["accel"] in ("kvm", "tcg", "none")


def test_tasks_go_only_where_they_can_run() -> None:
    assert able(CAPS, "build") == ["tcp://a:1"]
    assert able(CAPS, "boot") == []
    assert (
        why_not(CAPS, "boot")
        == "tcp://a:1 (a) lacks swtpm; tcp://b:1 (b) lacks UEFI firmware (OVMF)"
    )


def test_a_cluster_without_workers_is_an_error_not_a_hang(tmp_path: Path) -> None:
    graph = plan_matrix(matrix_dir(tmp_path), tmp_path / "cache")
    with (
        LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster,  # type: ignore[no-untyped-call]
        Client(cluster) as client,  # type: ignore[no-untyped-call]
    ):
        with pytest.raises(MatrixInfraError, match="no workers"):
            check_workers(client, graph)
        with pytest.raises(MatrixInfraError):
            run_graph(client, graph, tmp_path / "out", Caches(), Limits(), print)


def test_a_worker_without_the_tools_gets_no_cells_and_says_what_it_lacks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real worker on a host (here: a PATH) without QEMU, swtpm or mmdebstrap."""
    (tmp_path / "bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    graph = plan_matrix(matrix_dir(tmp_path), tmp_path / "cache")
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster,  # type: ignore[no-untyped-call]
        Client(cluster) as client,  # type: ignore[no-untyped-call]
        pytest.raises(MatrixInfraError) as info,
    ):
        check_workers(client, graph)
    message = str(info.value)
    assert "no worker can run the matrix's boot tasks" in message
    assert "qemu-system-x86_64, swtpm" in message
