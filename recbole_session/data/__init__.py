"""Data: model-specific dataset classes (``dataset``) and the preparation of atomic files
(``prepare``)."""
