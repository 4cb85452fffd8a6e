"""`maskdetect demo`: the whole pipeline on the sample data that ships with the package."""
