"""Model-specific dataset classes, found by :func:`recbole_session.utils.get_dataset_class`
as ``<Model>Dataset``; every model without one uses RecBole's ``SequentialDataset``."""

__all__: list[str] = []
