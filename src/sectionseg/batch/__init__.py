"""Many wafers: one wafer's files to its output set (:mod:`~sectionseg.batch.wafer`, shared with
``detect``), input fingerprints and run keys (:mod:`~sectionseg.batch.fingerprint`), the wafers of a
manifest or folder (:mod:`~sectionseg.batch.jobs`), detection on Dask (:mod:`~sectionseg.batch.run`)
and the summary table (:mod:`~sectionseg.batch.summary`). Importing this package loads neither torch
nor Dask."""
