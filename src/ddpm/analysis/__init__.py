"""How fast the forward process turns an image into isotropic noise (thesis section 5.1).

- :mod:`.closeness`: the thesis's metric in both readings, its exact counterparts and the
  pure-noise band, tabulated over schedules, T, image sizes and t;
- :mod:`.thesis`: closest points to noise and the comparison with the thesis's statements;
- :mod:`.forward`: forward samples and the iterative destruction of a photo;
- :mod:`.specs`: schedule specifications from the study config, and the schedule table.

Like every package of the library, this one imports nothing itself: names are imported from
their modules.
"""
