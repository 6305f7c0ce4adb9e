"""The browser UI (Gradio): `ui.layout.build_app(qa)` (the page; its callbacks: `ui.handlers`) and
`ui.app.serve(settings)`, run by `rag ui`.

Importing this package imports nothing heavy; `ui.app`, `ui.layout`, `ui.handlers` and `ui.conversations`
import Gradio.
"""
