"""The papers' claims, tested in one controlled study: train every arm from scratch, evaluate, report.

    python bench/papers_study.py run --out /work/papers_study --jobs 2      # resumable; Ctrl-C is safe
    python bench/papers_study.py probe --out /work/papers_study             # mechanism probes, then report
    python bench/papers_study.py report --out /work/papers_study            # tables and plots so far
    python bench/papers_study.py package --out /work/papers_study --arm siamcan --seed 0 --dest DIR

Plan: `bench/papers_study.json` (arms, seeds, the shared schedule, the held-out suite, the claims).
`run` trains, exports and evaluates each (arm, seed) not yet done, all arms of a seed before the next
seed; `--arms` limits it to some arms, `--device cuda` trains and tracks on a GPU. `probe` runs the
mechanism probes (`siamstream.study.probes`) on every finished (arm, seed) not yet probed and draws the
self-spatial attention of each probed SiamCAN arm (`<arm>_attention.png`). `report` writes `report.md`
(with the mechanisms' table once probes exist), `claims.png` and `eao_curves.png` into the output folder
and prints the tables. `package`
copies one (arm, seed)'s tracker package to `--dest` with a MODEL_CARD.md of its training and scores.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

import torch

from siamstream.study.plan import StudyPlan, read_plan
from siamstream.study.probe_report import load_probes, mechanism_markdown, mechanism_results
from siamstream.study.probes import PROBES_FILE, attention_figure, run_probes
from siamstream.study.report import (
    arm_table,
    claim_results,
    eao_curves,
    load_results,
    markdown,
    model_card,
    plot_claims,
    plot_eao_curves,
)
from siamstream.study.runner import Task, run_study, study_tasks

PLAN = Path(__file__).with_name("papers_study.json")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["run", "probe", "report", "package"])
    parser.add_argument("--plan", type=Path, default=PLAN, help="study plan JSON")
    parser.add_argument("--out", type=Path, required=True, help="study folder (checkpoints, results)")
    parser.add_argument("--jobs", type=int, default=1, help="(arm, seed) tasks run at once")
    parser.add_argument("--device", default="cpu", help="torch device")
    parser.add_argument("--arms", nargs="+", help="only these arms (default: all)")
    parser.add_argument("--arm", help="package: the arm")
    parser.add_argument("--seed", type=int, default=0, help="package: the seed")
    parser.add_argument("--dest", type=Path, help="package: destination folder (replaced)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    plan = read_plan(args.plan)
    if args.command == "package":
        if args.arm is None or args.dest is None:
            parser.error("package needs --arm and --dest")
        shutil.rmtree(args.dest, ignore_errors=True)
        shutil.copytree(Task(args.arm, args.seed).folder(args.out) / "package", args.dest)
        (args.dest / "MODEL_CARD.md").write_text(
            model_card(plan, load_results(plan, args.out), args.arm, args.seed)
        )
        print(f"wrote {args.dest}")
        return
    if args.command == "run":
        run_study(plan, args.out, max(1, args.jobs), args.device, args.arms)
    if args.command == "probe":
        torch.set_num_threads(1)  # the probes are small single-stream forwards
        probe_study(plan, args.out, args.arms)
    results = load_results(plan, args.out)
    claims = claim_results(plan, results)
    arms = arm_table(plan, results)
    text = markdown(plan, claims, arms)
    mechanisms = mechanism_results(plan, load_probes(plan, args.out))
    if mechanisms:
        text += "\nMechanism probes (oracle crops on the held-out suite):\n\n" + mechanism_markdown(
            mechanisms
        )
    (args.out / "report.md").write_text(text)
    if claims:
        plot_claims(claims, args.out / "claims.png")
    curves = eao_curves(plan, results)
    if curves:
        plot_eao_curves(curves, args.out / "eao_curves.png")
    print(text)


def probe_study(plan: StudyPlan, out: Path, arms: list[str] | None) -> None:
    """Probe every finished (arm, seed) that has no probes yet; draw each SiamCAN arm's attention."""
    for task in study_tasks(plan, arms):
        folder = task.folder(out)
        if task.done(out) and not (folder / PROBES_FILE).is_file():
            run_probes(plan, task, out)
            print(f"probed {task.arm} seed {task.seed}")
            if plan.arm(task.arm).tracker.startswith("siamcan") and task.seed == plan.seeds[0]:
                attention = plan.arm(task.arm).tracker_config().head.spatial_attention
                if attention:
                    print(f"wrote {attention_figure(plan, task, out, out / f'{task.arm}_attention.png')}")


if __name__ == "__main__":
    main()
