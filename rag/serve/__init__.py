"""The fronts: the `DocQA` Python API, the HTTP API, the MCP server and the LangChain views."""
