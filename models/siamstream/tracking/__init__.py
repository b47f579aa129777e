"""Pure tracking logic shared by the offline tracker and the service (Contract 3).

Modules: `state` (the per-stream record and the result of one frame), `geometry` (box conventions and
crops), `anchors` and `window` (fixed score-map layouts), `penalty` (scale/aspect change penalty), one
post-processor per family (`post_processing`; the families' own in `rpn`, `car`, `siamfc`, registered on
import here) returning an `estimate`, `validation` (checks at the step boundary), `step`
(init/prepare/finish), `offline` and `multi_target` (trackers driving the network stages).
"""

from siamstream.tracking import car, rpn, siamfc  # noqa: F401  (register the families' post-processors)
