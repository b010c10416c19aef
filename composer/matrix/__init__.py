"""Image matrices: many blueprint variants built and booted on a Dask cluster."""
