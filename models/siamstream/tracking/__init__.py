"""Pure tracking logic shared by the offline tracker and the service (Contract 3).

Modules: `state` (the per-stream record and the result of one frame), `geometry` (box conventions and
crops), `anchors` and `window` (fixed score-map layouts), `penalty` (scale/aspect change penalty), one
post-processor per family (`rpn`, `car`, `siamfc`) returning an `estimate`, `validation` (checks at the
step boundary), `step` (init/prepare/finish) and `offline` (a tracker driving the two network stages).
"""
