"""The strategies' figures from rank 0's raw results: loss checks, throughput, scaling, memory vs the model, overlap.

`summarise` turns what `ch4.parallel_strategies` measured into its report (JSON-ready); `render` prints it.
"""
from __future__ import annotations

import statistics
from pathlib import Path

from ch4.parallel_strategies import LOSS_TOL, config_of


def summarise(raw: dict, world: int, backend: str, device: str, size: str, opts: dict, error: str | None) -> dict:
    from ch4 import memory_model as mm

    cfg = config_of(opts["config"])
    ref = raw.get("reference_losses")
    tokens_per_rank = opts["batch"] * opts["seq"]
    rows, panels = {}, []
    single = raw["strategies"].get("single")
    single_tps = tokens_per_rank / (statistics.median(single["times_ms"]) / 1e3) if single else None
    for name in ["single", *opts["strategies"]]:
        r = raw["strategies"].get(name)
        if r is None:
            rows[name] = {"error": error or "not run"}
            continue
        if "skipped" in r:
            rows[name] = {"skipped": r["skipped"]}
            continue
        w = r["world"]
        ms = statistics.median(r["times_ms"])
        tps = w * tokens_per_rank / (ms / 1e3)
        precision = "bf16" if name == "fsdp_bf16" else ("tf32" if device == "cuda" and opts["tf32"] else "fp32")
        tol = LOSS_TOL[precision]
        check = None
        if name != "single" and ref:
            rel = [abs(a - b) / max(abs(b), 1e-12) for a, b in zip(r["losses"], ref, strict=True)]
            ref_norm = raw["reference_grad_norm"]
            norm_err = abs(r["grad_norm"] - ref_norm) / ref_norm
            check = {"ok": rel[0] <= tol["first"] and max(rel) <= tol["later"] and norm_err <= tol["later"],
                     "first_step_rel_err": rel[0], "max_rel_err": max(rel), "grad_norm_rel_err": norm_err,
                     "tolerance": tol, "precision": precision}
        predicted = None
        if name != "fsdp_bf16":   # bf16 compute over fp32 shards: not one of the model's precisions
            predicted = [p["total"] for p in mm.per_rank(cfg, name, w, opts["batch"], opts["seq"], "fp32",
                                                         micro=r.get("micro") if name == "pp" else None)]
        ok = check is None or check["ok"]
        rows[name] = {"world": w, "ms_per_step": ms, "tokens_per_s": tps, "losses": r["losses"], "matches_reference": check,
                      "scaling_efficiency": (tps / (w * single_tps) if ok and single_tps and name != "single" else None),
                      "peak_bytes_per_rank": r["peak_bytes_per_rank"], "predicted_bytes_per_rank": predicted,
                      "predicted_over_measured": ([p / m for p, m in zip(predicted, r["peak_bytes_per_rank"], strict=True)]
                                                  if predicted and all(r["peak_bytes_per_rank"]) else None),
                      "microbatches": r.get("micro") if name == "pp" else None}
        if r.get("trace"):
            from ch4.comm_overlap import trace_overlap
            rows[name]["overlap"], ops = trace_overlap(r["trace"])
            rows[name]["overlap"]["trace"] = r["trace"]
            fraction = rows[name]["overlap"]["overlap_fraction"]
            if fraction is not None:
                panels.append((f"{name}, rank 0, {opts['trace_steps']} steps: {fraction:.0%} of NCCL kernel time under "
                               "computation", ops))
    figure = None
    if panels:
        try:
            from ch4.comm_overlap import draw
            figure = str(draw(panels, Path(opts["trace_dir"]) / "overlap_timeline.png",
                              f"gradient communication vs computation, {world} ranks"))
        except Exception as exc:   # e.g. matplotlib missing: the figures are in the JSON all the same
            figure = f"not drawn: {type(exc).__name__}: {exc}"
    # Verified: no failure, and every strategy that ran matches the reference (skipped ones say why).
    verified = error is None and all("error" not in x and (x.get("matches_reference") or {"ok": True})["ok"]
                                     for x in rows.values())
    shape = ("vocab", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn_dim")
    return {"schema": 1, "tool": "python -m ch4.parallel_strategies", "world": world, "backend": backend, "device": device,
            "size": size, "config": {k: getattr(cfg, k) for k in shape}, "params": cfg.n_params(),
            "batch_per_rank": opts["batch"], "seq": opts["seq"], "warmup": opts["warmup"], "steps": opts["steps"],
            "tf32": opts["tf32"] and device == "cuda", "overlap_figure": figure, "reference_losses": ref, "rows": rows,
            "error": error, "verified": verified}


def render(r: dict) -> str:
    from harness.report import text_table

    def gib(x):
        return "-" if x is None or None in x else "/".join(f"{v / 2**30:.3g}" for v in x)

    rows = []
    for name, x in r["rows"].items():
        if "skipped" in x or "error" in x:
            rows.append([name, "skipped: " + x["skipped"] if "skipped" in x else "ERROR: " + x["error"]] + [""] * 6)
            continue
        m = x["matches_reference"]
        ov = x.get("overlap", {}).get("overlap_fraction") if x.get("overlap") else None
        rows.append([name, f"{x['ms_per_step']:.3g}", f"{x['tokens_per_s']:.4g}",
                     "-" if x["scaling_efficiency"] is None else f"{x['scaling_efficiency']:.0%}",
                     gib(x["peak_bytes_per_rank"]), gib(x["predicted_bytes_per_rank"]),
                     "-" if m is None else ("yes" if m["ok"] else f"NO ({m['max_rel_err']:.1e})"),
                     "-" if ov is None else f"{ov:.0%}"])
    head = (f"{r['world']} ranks, {r['backend']} on {r['device']}, size {r['size']}: {r['params'] / 1e6:.3g} M params, "
            f"{r['batch_per_rank']} x {r['seq']} tokens per rank")
    table = text_table(["strategy", "ms/step", "tokens/s", "scaling", "peak GiB/rank", "model GiB/rank",
                        "loss matches", "comm hidden"], rows)
    skipped = sum("skipped" in x for x in r["rows"].values())
    if r["verified"]:
        tail = "every strategy that ran is verified" + (f" ({skipped} skipped)" if skipped else "")
    else:
        tail = "NOT VERIFIED" + (f": {r['error']}" if r["error"] else "")
    return "\n".join([head, table, tail])
