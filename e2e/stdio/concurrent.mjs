// TypeScript SDK clients calling a shared stdio child through Gatehouse at once (run by
// e2e/stdio/test_stdio.py beside Python clients): each must get its own answers.
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const url = new URL(process.env.E2E_URL);
const headers = { Authorization: `Bearer ${process.env.E2E_KEY}` };

async function one(n) {
  const client = new Client({ name: `ts-${n}`, version: "1" });
  await client.connect(new StreamableHTTPClientTransport(url, { requestInit: { headers } }));
  const wrong = [];
  for (let round = 0; round < 5; round++) {
    const text = `ts-${n}-${round}`;
    const result = await client.callTool({ name: "echo", arguments: { message: text } });
    const got = result.content.map((c) => c.text).join("");
    if (got !== `Echo: ${text}`) wrong.push(`${text} -> ${got}`);
  }
  await client.close();
  return wrong;
}

const wrong = (await Promise.all([0, 1, 2, 3].map(one))).flat();
if (wrong.length > 0) {
  console.error("answers crossed between clients:", wrong);
  process.exit(1);
}
console.log("4 TypeScript clients x 5 calls: each got its own answer");
