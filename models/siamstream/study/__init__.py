"""Controlled studies of the papers' trackers against their baselines: a plan of arms, seeds and a
held-out suite (`plan`), resumable training and evaluation of every (arm, seed) (`runner`), and the
report of each paper's claim with its paired bootstrap interval (`report`)."""
