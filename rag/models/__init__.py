"""The models: provisioning them offline, embedders, chat models and the generation queue."""
