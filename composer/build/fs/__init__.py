"""File systems built as plain files from trees, offline."""
