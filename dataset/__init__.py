"""Stage 2 of the pipeline: turn videos into clean native-resolution datasets, and read them back.

Public API: :func:`dataset.loader.load_frames`, :func:`dataset.loader.find_game_folders`,
the Lab conversion in :mod:`dataset.color`, ``extract`` and the dataset tools.
Torch-free by design: the live filter and the dataset tools run on the base install.
"""
