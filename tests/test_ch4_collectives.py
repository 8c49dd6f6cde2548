"""Chapter 4's collectives sweep over gloo on the CPU (2 and 3 ranks, tiny sizes), its bandwidth arithmetic,
its goal against the P2P ceiling, and the P2P figures' path from benchmark_peak.py to the reports.

The ranks are forked here (the command spawns them; forking skips a torch import per rank). Every result is
checked element for element before it is timed, so the checks below hold at any machine speed; no timing
figure is asserted beyond being positive."""
from __future__ import annotations

import json
import socket
import time

import pytest
import torch

from ch4 import collectives as col

N_SIZES = 6   # 8 B ... 8 KiB in steps of 4
OPTS = dict(ops=list(col.OPS), min_bytes=8, max_bytes=8 << 10, step=4, iters=2, warmup=1, seed=3, timeout=60)


@pytest.fixture(scope="module")
def reports():
    return {n: col.finish(col.launch(n, "gloo", OPTS, start_method="fork"), n, "gloo", "tiny", OPTS) for n in (2, 3)}


@pytest.mark.parametrize("n", [2, 3])
def test_every_collective_verified_and_timed_at_every_size(reports, n):
    r = reports[n]
    assert r["verified"] and r["world"] == n and r["provenance"]["device"]["name"] == "cpu"
    assert len(r["rows"]) == len(col.OPS) * N_SIZES
    for row in r["rows"]:
        if "skipped" in row:   # fewer fp32 elements than ranks: nothing to split
            assert row["op"] in ("all_gather", "reduce_scatter", "all_to_all") and row["count"] < n, row
            continue
        assert row["verified"] and row["time_us"] > 0, row
        assert row["moved_bytes"] == row["count"] * 4 <= row["bytes"]
        assert row["algbw_gbps"] == pytest.approx(row["moved_bytes"] / (row["time_us"] * 1e-6) / 1e9)
        assert row["busbw_gbps"] == pytest.approx(row["algbw_gbps"] * col.bus_factor(row["op"], n))
    json.dumps(r)   # the report is plain JSON


def test_three_ranks_split_sizes_as_nccl_tests_does(reports):
    rows = {(x["op"], x["bytes"]): x for x in reports[3]["rows"]}
    assert rows[("all_gather", 8)]["skipped"] and rows[("all_to_all", 8)]["count"] == 0
    assert rows[("reduce_scatter", 32)]["count"] == 6      # 8 elements rounded down to a multiple of 3
    assert rows[("all_reduce", 32)]["count"] == 8          # all-reduce keeps every element
    assert reports[3]["goal"]["met"] is None               # CPU: no goal applies


def test_bus_bandwidth_factors():
    assert [col.bus_factor("all_reduce", n) for n in (1, 2, 4, 8)] == [0, 1, 1.5, 1.75]
    for op in ("all_gather", "reduce_scatter", "all_to_all"):
        assert col.bus_factor(op, 2) == 0.5 and col.bus_factor(op, 8) == 0.875
    assert col.bus_factor("broadcast", 8) == 1
    with pytest.raises(ValueError):
        col.bus_factor("gather", 2)
    assert col.parse_bytes("1G") == 1 << 30 and col.parse_bytes("64K") == 65536 and col.parse_bytes("8") == 8
    assert col.message_sizes(8, 1 << 30, 2)[-1] == 1 << 30 and len(col.message_sizes(8, 1 << 30, 2)) == 28
    assert col.element_count("all_to_all", 1 << 20, 3) % 3 == 0


def test_a_wrong_result_is_caught_and_not_timed(monkeypatch):
    real = col._case

    def off_by_one(op, count, rank, n, device, seed):   # a broken all_gather: one rank's output is one off
        call, out, expected = real(op, count, rank, n, device, seed)
        if op == "all_gather" and rank == 1:
            expected = expected.clone()
            expected[-1] += 1
        return call, out, expected

    monkeypatch.setattr(col, "_case", off_by_one)   # forked ranks inherit the patch
    opts = {**OPTS, "ops": ["all_gather", "broadcast"], "max_bytes": 128}
    r = col.finish(col.launch(2, "gloo", opts, start_method="fork"), 2, "gloo", "tiny", opts)
    gathered = [x for x in r["rows"] if x["op"] == "all_gather"]
    assert not r["verified"] and all(x["verified"] is False and "time_us" not in x for x in gathered)
    assert all(x["verified"] for x in r["rows"] if x["op"] == "broadcast")


def _raw(busbw_at_1g: float, name: str = "NVIDIA H200", arch: str = "H200") -> dict:
    row = {"op": "all_reduce", "bytes": 1 << 30, "count": 1 << 28, "moved_bytes": 1 << 30, "verified": True,
           "time_us": 1.0, "algbw_gbps": busbw_at_1g, "busbw_gbps": busbw_at_1g}
    return {"rows": [row], "provenance": {"device": {"name": name, "arch": arch}}}


def test_goal_judged_against_the_measured_p2p_ceiling(tmp_path):
    peaks = tmp_path / "h200.json"
    peaks.write_text(json.dumps({"figures": {
        "p2p_0to1_gbps": {"value": 380.0}, "p2p_kernel_pull_1to0_gbps": {"value": 400.0},
        "peer_bidir_0and1_gbps": {"value": 760.0}, "peer_latency_0to1_us": {"value": 20.0}}}))
    opts = {**OPTS, "max_bytes": 1 << 30}
    met = col.finish(_raw(330.0), 2, "nccl", "full", opts, peaks)
    assert met["ceiling"]["measured_figure"] == "p2p_kernel_pull_1to0_gbps"   # one direction only, best of them
    assert met["goal"]["met"] is True and met["goal"]["measured"] == pytest.approx(330 / 400)
    assert met["all_reduce_largest"]["fraction_of_datasheet"] == pytest.approx(330 / 450)
    missed = col.finish(_raw(300.0), 2, "nccl", "full", opts, peaks)
    assert missed["goal"]["met"] is False and "MISSED" in col.render(missed)
    unmeasured = col.finish(_raw(300.0), 2, "nccl", "full", opts, tmp_path / "none.json")
    assert unmeasured["goal"]["met"] is False and "no " in unmeasured["goal"]["why"]
    short = _raw(300.0)
    short["rows"][0]["bytes"] = 16 << 20   # a run that stopped before 1 GiB: the goal is not judged
    assert col.finish(short, 2, "nccl", "small", {**opts, "max_bytes": 16 << 20}, peaks)["goal"]["met"] is None


def test_json_and_plot_from_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(col, "START_METHOD", "fork")
    out, png = tmp_path / "c.json", tmp_path / "c.png"
    rc = col.main(["--world", "2", "--max-bytes", "1K", "--step", "4", "--ops", "all_reduce,all_to_all",
                   "--iters", "1", "--json", str(out), "--plot", str(png), "--timeout", "60"])
    assert rc == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["verified"] and {r["op"] for r in data["rows"]} == {"all_reduce", "all_to_all"}
    assert data["config"]["max_bytes"] == 1024 and data["provenance"]["git_sha"] is not None
    assert png.stat().st_size > 1000 and "all results verified" in capsys.readouterr().out


def test_under_torchrun_env_the_process_is_one_rank(tmp_path, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
                     GLOO_SOCKET_IFNAME="lo", **col.NO_MULTICAST).items():
        monkeypatch.setenv(k, v)
    threads = torch.get_num_threads()
    try:
        rc = col.main(["--max-bytes", "64", "--iters", "1", "--ops", "all_reduce,broadcast", "--json", str(tmp_path / "t.json")])
    finally:
        torch.set_num_threads(threads)
    data = json.loads((tmp_path / "t.json").read_text())
    assert rc == 0 and data["world"] == 1 and data["verified"] and data["goal"]["met"] is None


def test_a_run_past_its_deadline_is_killed_not_left_behind():
    psutil = pytest.importorskip("psutil")
    slow = {**OPTS, "ops": ["all_reduce"], "max_bytes": 64 << 20, "iters": 1000, "timeout": 1.0}
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        col.launch(2, "gloo", slow, start_method="fork")
    assert time.monotonic() - t0 < 30
    time.sleep(0.2)
    left = [p for p in psutil.Process().children(recursive=True) if p.is_running() and p.status() != "zombie"]
    assert [p for p in left if "resource_tracker" not in " ".join(p.cmdline())] == []


def test_bad_arguments_exit_2(capsys):
    for bad in (["--ops", "all_reduce,gather"], ["--max-bytes", "1X"], ["--min-bytes", "2K", "--max-bytes", "1K"],
                ["--world", "0"], ["--iters", "0"], ["--backend", "nccl", "--world", "64"], ["--size", "huge"],
                ["--peaks", "/no/such/file.json"]):
        with pytest.raises(SystemExit) as info:
            col.main(bad)
        assert info.value.code == 2, bad
    assert all(line.startswith("collectives:") for line in capsys.readouterr().err.strip().splitlines())


# ---- the P2P ceiling: benchmark_peak.py's section, its merge into a peaks file, Chapter 2's display ------------

def test_peers_with_fewer_than_two_gpus_say_so_and_measure_nothing():
    from harness.peak_measure import Recorder, make_plan, peers

    rec = Recorder({"figures": {}, "skipped": {}, "details": {}}, log=lambda s: None)
    peers(torch.device("cpu"), make_plan(torch.device("cpu"), True), rec)
    assert rec.doc["figures"] == {} and "needs 2 GPUs" in rec.doc["skipped"]["p2p_gbps"]


def _p2p_doc() -> dict:
    fig = lambda v, u="GB/s": {"value": v, "unit": u, "what": "x", "how": "y", "datasheet": None}  # noqa: E731
    return {"provenance": {"git_sha": "abc", "started_at": "now"}, "skipped": {},
            "figures": {"p2p_0to1_gbps": fig(390.0), "p2p_1to0_gbps": fig(391.0), "p2p_kernel_pull_0to1_gbps": fig(370.0),
                        "p2p_kernel_push_0to1_gbps": fig(360.0), "peer_latency_0to1_us": fig(22.0, "us"),
                        "peer_bidir_0and1_gbps": fig(740.0)},
            "details": {"peer_access": {"0->1": True, "1->0": True}}, "notes": []}


def test_p2p_figures_merge_into_a_recorded_peaks_file_keeping_the_rest(tmp_path):
    from harness.peak_measure import merge_p2p
    from harness.peaks import ceilings, peaks_path

    recorded = {"provenance": {"git_sha": "old"}, "notes": [], "details": {},
                "figures": {"memory_copy_gbps": {"value": 4000.0}}, "skipped": {"p2p_gbps": "1 GPU(s) visible"}}
    merged = merge_p2p(recorded, _p2p_doc())
    assert merged["figures"]["memory_copy_gbps"]["value"] == 4000.0 and "p2p_gbps" not in merged["skipped"]
    assert merged["figures"]["p2p_1to0_gbps"]["value"] == 391.0 and merged["details"]["p2p_provenance"]["git_sha"] == "abc"
    assert recorded["skipped"] == {"p2p_gbps": "1 GPU(s) visible"}   # the input is left as it was
    assert merge_p2p(merged, {"figures": {}, "skipped": {"p2p_gbps": "needs 2 GPUs"}})["figures"].keys() == {"memory_copy_gbps"}
    # The harness's P2P ceiling is the best one-direction figure: not the bidirectional sum, not a latency.
    peaks_path("NVIDIA H200", tmp_path).write_text(json.dumps(merged))
    assert ceilings({"name": "NVIDIA H200"}, tmp_path).bandwidth["p2p"] == 391.0


def test_topology_report_shows_the_measured_peer_figures(tmp_path, capsys):
    from ch2 import topology

    pairs = topology.p2p_pairs(_p2p_doc())
    assert pairs[0] == {"src": 0, "dst": 1, "copy": 390.0, "pull": 370.0, "push": 360.0, "rtt_us": 22.0}
    assert pairs[1]["src"] == 1 and pairs[1]["pull"] is None
    topo = topology.parse("\tGPU0\tGPU1\tCPU Affinity\nGPU0\t X \tNV18\t0-15\nGPU1\tNV18\t X \t0-15\n")
    text = topology.render_p2p(_p2p_doc(), topo)
    assert "NV18" in text and "390 GB/s" in text and "22 us" in text
    assert "not measured (needs 2 GPUs" in topology.render_p2p({"figures": {}, "skipped": {"p2p_gbps": "needs 2 GPUs"}})
    (tmp_path / "p.json").write_text(json.dumps(_p2p_doc()))
    assert topology.main(["--peaks", str(tmp_path / "p.json"), "--topo-file", str(tmp_path / "p.json")]) == 0
    assert "390 GB/s" in capsys.readouterr().out
    assert topology.main(["--peaks", str(tmp_path / "none.json")]) == 2


@pytest.mark.multigpu
def test_nccl_sweep_on_every_visible_gpu(tmp_path):
    n = torch.cuda.device_count()
    opts = {**OPTS, "max_bytes": 1 << 20, "step": 4, "iters": 5}
    r = col.finish(col.launch(n, "nccl", opts), n, "nccl", "small", opts)
    assert r["verified"] and all("busbw_gbps" in x or "skipped" in x for x in r["rows"])


def test_benchmark_peak_p2p_options_refuse_bad_combinations(tmp_path, capsys):
    import benchmark_peak

    assert benchmark_peak.main(["--merge", str(tmp_path / "x.json")]) == 2            # --merge needs --p2p-only
    assert benchmark_peak.main(["--p2p-only", "--merge", str(tmp_path / "x.json")]) == 2   # no such peaks file
    if not torch.cuda.is_available():
        assert benchmark_peak.main(["--p2p-only", "--device", "cpu"]) == 2
    assert all(line.startswith("benchmark_peak:") for line in capsys.readouterr().err.strip().splitlines())
