// An A2A agent built on the official A2A JavaScript SDK (npm `@a2a-js/sdk`, its Express
// server), for the `a2a` policy tests: a streaming agent whose tasks go submitted → working →
// an artifact with the answer → completed, as the SDK's sample agent does.
//
//   node a2a-agent.mjs PORT
//
// Serves the agent card at /.well-known/agent-card.json (A2A v1.0, one JSON-RPC interface at
// http://localhost:PORT/) and JSON-RPC at /. Prints `ready` when listening.

import express from "express";
import { A2A_PROTOCOL_VERSION, AGENT_CARD_PATH, Role, TaskState } from "@a2a-js/sdk";
import { AgentEvent, DefaultRequestHandler, InMemoryTaskStore } from "@a2a-js/sdk/server";
import { agentCardHandler, jsonRpcHandler, UserBuilder } from "@a2a-js/sdk/server/express";

const port = Number(process.argv[2]);
if (!port) {
  console.error("usage: node a2a-agent.mjs PORT");
  process.exit(2);
}

const card = {
  name: "Echo Agent",
  description: "Answers each message, going through a task's states.",
  supportedInterfaces: [
    { url: `http://localhost:${port}/`, protocolBinding: "JSONRPC", tenant: "", protocolVersion: A2A_PROTOCOL_VERSION },
  ],
  provider: { organization: "agentgateway-rs tests", url: "https://example.com" },
  version: "1.0.0",
  capabilities: { streaming: true, pushNotifications: false, extensions: [], extendedAgentCard: false },
  securitySchemes: {},
  securityRequirements: [],
  defaultInputModes: ["text"],
  defaultOutputModes: ["text"],
  skills: [{ id: "echo", name: "Echo", description: "Echoes", tags: ["test"], examples: ["hi"], inputModes: ["text"], outputModes: ["text"], securityRequirements: [] }],
  documentationUrl: "",
  signatures: [],
};

const textPart = (value) => ({ content: { $case: "text", value }, metadata: undefined, filename: "", mediaType: "text/plain" });
const now = () => new Date().toISOString();

class EchoExecutor {
  cancelTask = async () => {};

  async execute(ctx, bus) {
    const { taskId, contextId, userMessage } = ctx;
    const said = userMessage.parts.find((p) => p.content?.$case === "text")?.content.value ?? "";
    bus.publish(
      AgentEvent.task(
        ctx.task ?? {
          id: taskId,
          contextId,
          status: { state: TaskState.TASK_STATE_SUBMITTED, timestamp: now(), message: undefined },
          artifacts: [],
          history: [userMessage],
          metadata: userMessage.metadata,
        },
      ),
    );
    bus.publish(
      AgentEvent.statusUpdate({ taskId, contextId, status: { state: TaskState.TASK_STATE_WORKING, timestamp: now(), message: undefined }, metadata: {} }),
    );
    await new Promise((r) => setTimeout(r, 50));
    bus.publish(
      AgentEvent.artifactUpdate({
        taskId,
        contextId,
        artifact: { artifactId: crypto.randomUUID(), name: "answer", description: "", parts: [textPart(`echo: ${said}`)], metadata: undefined, extensions: [] },
        lastChunk: true,
        append: false,
        metadata: undefined,
      }),
    );
    bus.publish(
      AgentEvent.statusUpdate({ taskId, contextId, status: { state: TaskState.TASK_STATE_COMPLETED, timestamp: now(), message: undefined }, metadata: undefined }),
    );
  }
}

const requestHandler = new DefaultRequestHandler(card, new InMemoryTaskStore(), new EchoExecutor());
const app = express();
app.use(`/${AGENT_CARD_PATH}`, agentCardHandler({ agentCardProvider: requestHandler }));
app.use(jsonRpcHandler({ requestHandler, userBuilder: UserBuilder.noAuthentication }));
app.listen(port, "127.0.0.1", () => console.log("ready"));
// Role is part of the SDK's surface the client uses; imported here to check the version.
void Role;
