"""Good Faith Estimates: the document, its compliance check, deadlines, billing and PDF."""
