"""Face detectors behind one interface; ``get_detector`` picks one by name from the config.

Adding a detector takes two things:

1. one module here with a :class:`~facegate.detect.base.Detector` subclass whose ``name`` is the
   detector's name: ``detect`` (and ``detect_batch`` if it batches) returning ``Face`` objects
   with dlib-like boxes, landmarks in a named scheme (dlib's predictor,
   :class:`~facegate.detect.landmarks.DlibLandmarker`, adds ``dlib5`` points to any box), raw
   scores passed through :func:`~facegate.detect.scores.finish`, and its geometry from
   :mod:`facegate.detect.boxes`;
2. one :class:`~facegate.models.detectors.DetectorSpec` in ``facegate.models.detectors``: the
   class to import, its weights (each an entry of the model registry), its native landmark
   schemes, whether O-Net refinement applies, its default smallest face and cost, and its score
   calibration (fitted with ``benchmarks/bench_detect.py --calibrate``).

No other table lists detectors: the CLI's choices, ``Config.min_face_size``'s default, the stack key
of the operating-point tables and the calibrated score scale are all read from the spec.

The other modules here are shared by the detectors: ``base`` (the interface, the input check),
``boxes`` (box and point geometry: NMS, IoU, squaring, regression, turns), ``landmarks`` (dlib's
5-point predictor), ``scores`` (the calibrated score and ``min_score`` cut), ``refine`` (MTCNN's
R-Net and O-Net run on another detector's boxes), ``cascade`` and ``pyramid`` (BlazeFace's passes
after its tile plan, and the shrunk copies they share), ``factory`` (``get_detector``).
"""

from facegate.detect.base import Detector
from facegate.detect.factory import detector_class, get_detector

__all__ = ["Detector", "detector_class", "get_detector"]
