# A stdio MCP server (newline-delimited JSON-RPC, standard library only) with one tool whose
# description is read from the file named by its argument at every tools/list, so the console
# walk changes a tool's definition the way an upstream would.
import json
import sys

path = sys.argv[1]
for line in sys.stdin:
    message = json.loads(line)
    if "id" not in message or "method" not in message:
        continue
    method = message["method"]
    if method == "initialize":
        result = {
            "protocolVersion": "2025-11-25",
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "notes", "version": "1"},
        }
    elif method == "tools/list":
        with open(path) as description:
            text = description.read()
        result = {"tools": [{"name": "lookup", "description": text, "inputSchema": {"type": "object"}}]}
    elif method == "tools/call":
        result = {"content": [{"type": "text", "text": "found the note"}]}
    else:
        result = {}
    print(json.dumps({"jsonrpc": "2.0", "id": message["id"], "result": result}), flush=True)
