"""Datasets: a registry, verified downloads, and one on-disk format.

Every dataset is converted once (:func:`ddpm.data.prepare.prepare_dataset`) into a single
``.npz`` file, which training, sampling and evaluation read back with
:func:`ddpm.data.store.load_split` and :func:`ddpm.data.store.load_meta`.

- :mod:`ddpm.workflow.datasets`: what each dataset is (importable without PyTorch).
- :mod:`.store`: the file format, its writer and readers; the format version is checked on read.
- :mod:`.prepare`: from a source to the file; the embedded sources and photos.
- :mod:`.embedded`: ``mnist5k`` and ``digits``, shipped with installed packages, split by content.
- :mod:`.torchvision_sources`: MNIST, Fashion-MNIST, CIFAR-10, FGVC-Aircraft, fetched once.
- :mod:`.download`: the verified atomic downloader (also used for the Inception weights), and
  its errors.
- :mod:`.archives`, :mod:`.resize`: the helpers.

Like every package of the library, this one imports nothing itself: names are imported from
their modules, so a rule's code version follows the modules it really uses.
"""
