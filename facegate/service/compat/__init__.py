"""Compatibility front doors onto facegate's own gallery and decisions.

:mod:`.compreface`: the CompreFace REST subset its SDKs and Double Take use; :mod:`.similarity`: what
``similarity`` means in those answers (a calibrated false-accept scale).
"""
