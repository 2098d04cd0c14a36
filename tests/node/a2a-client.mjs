// The official A2A JavaScript SDK's client (npm `@a2a-js/sdk`) through the gateway: it fetches
// the agent card from BASE (ClientFactory.createFromUrl), then talks to whatever URL the card
// names. Prints one JSON object: the card's interface URLs, a sent message's answer, a
// streamed task's events, the task fetched again, or the error of a step.
//
//   node a2a-client.mjs BASE [send] [stream] [get]

import { Role, TaskState } from "@a2a-js/sdk";
import { ClientFactory } from "@a2a-js/sdk/client";

const [base, ...steps] = process.argv.slice(2);
const out = {};
const message = (text) => ({
  tenant: "",
  message: {
    messageId: crypto.randomUUID(),
    role: Role.ROLE_USER,
    parts: [{ content: { $case: "text", value: text }, metadata: undefined, filename: "", mediaType: "text/plain" }],
    taskId: "",
    contextId: "",
    extensions: [],
    metadata: {},
    referenceTaskIds: [],
  },
  configuration: undefined,
  metadata: {},
});
const error = (e) => ({ name: e.constructor.name, message: String(e.message).slice(0, 500) });

try {
  const client = await new ClientFactory().createFromUrl(base);
  const card = await client.getAgentCard();
  out.interfaces = card.supportedInterfaces.map((i) => i.url);
  for (const step of steps) {
    try {
      if (step === "send") {
        // A Task (or, from some agents, a Message).
        const r = await client.sendMessage(message("hello over a2a"));
        out.send = {
          taskId: r.id ?? null,
          state: r.status ? (TaskState[r.status.state] ?? r.status.state) : null,
          artifacts: (r.artifacts ?? []).map((a) => a.parts.map((p) => p.content?.value).join("")),
        };
      } else if (step === "stream") {
        const events = [];
        let taskId = null;
        for await (const ev of client.sendMessageStream(message("streamed"))) {
          const p = ev.payload;
          if (!p) continue;
          if (p.$case === "task") taskId = p.value.id;
          if (p.$case === "statusUpdate") events.push(`status:${TaskState[p.value.status.state] ?? p.value.status.state}`);
          else if (p.$case === "artifactUpdate") events.push(`artifact:${p.value.artifact.parts.map((x) => x.content?.value).join("")}`);
          else events.push(p.$case);
        }
        out.stream = { taskId, events };
      } else if (step === "get") {
        const id = out.stream?.taskId ?? out.send?.taskId;
        const t = await client.getTask({ tenant: "", id, historyLength: 0 });
        out.get = { id: t.id, state: TaskState[t.status.state] ?? t.status.state };
      }
    } catch (e) {
      out[step] = { error: error(e) };
    }
  }
  console.log(JSON.stringify(out));
} catch (e) {
  console.log(JSON.stringify({ ...out, fatal: error(e) }));
  process.exit(1);
}
