"""The labeling API: the annotator's loop (labeling.py), images (images.py), leads' queue
management and pair builds (manage.py)."""
