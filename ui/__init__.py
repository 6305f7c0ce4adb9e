"""The browser UI (Gradio): `ui.app.build_app(qa)` and `ui.app.serve(settings)`, run by `rag ui`.

Importing this package imports nothing heavy; `ui.app` imports Gradio.
"""
