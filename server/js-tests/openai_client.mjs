// Drives `llama-crab serve` with the official openai npm client (run by server/openai_client_test.cpp, which
// starts the server and passes LLAMA_CRAB_BASE_URL, LLAMA_CRAB_API_KEY and LLAMA_CRAB_MODEL).
// Prints one line per check and exits non-zero on the first failure.
import OpenAI from "openai";

const client = new OpenAI({
  baseURL: process.env.LLAMA_CRAB_BASE_URL,
  apiKey: process.env.LLAMA_CRAB_API_KEY,
  maxRetries: 0,
  timeout: 60_000,
});
const model = process.env.LLAMA_CRAB_MODEL;

function check(cond, what, detail) {
  if (!cond) {
    console.error(`FAIL ${what}: ${JSON.stringify(detail)}`);
    process.exit(1);
  }
  console.log(`ok ${what}`);
}

const messages = [
  { role: "system", content: "You tell short stories." },
  { role: "user", content: "Once upon a time" },
];

const models = await client.models.list();
check(models.data.some((m) => m.id === model), "models.list lists the served model", models.data);

const chat = await client.chat.completions.create({
  model,
  messages,
  max_tokens: 16,
  temperature: 0,
});
check(chat.object === "chat.completion", "chat completion object", chat.object);
check(typeof chat.choices[0].message.content === "string" && chat.choices[0].message.content.length > 0, "chat completion text", chat.choices[0]);
check(chat.choices[0].message.role === "assistant", "chat completion role", chat.choices[0].message);
check(chat.usage.completion_tokens > 0 && chat.usage.total_tokens === chat.usage.prompt_tokens + chat.usage.completion_tokens, "chat usage", chat.usage);

const stream = await client.chat.completions.create({
  model,
  messages,
  max_tokens: 16,
  temperature: 0,
  stream: true,
  stream_options: { include_usage: true },
});
let streamed = "";
let usage = null;
let chunks = 0;
let finish = null;
for await (const chunk of stream) {
  chunks++;
  if (chunk.usage) usage = chunk.usage;
  for (const c of chunk.choices) {
    streamed += c.delta?.content ?? "";
    if (c.finish_reason) finish = c.finish_reason;
  }
}
check(chunks > 2, "streamed chat arrives in several chunks", chunks);
check(streamed === chat.choices[0].message.content, "streamed chat text equals the non-streamed one", { streamed, whole: chat.choices[0].message.content });
check(finish === chat.choices[0].finish_reason, "streamed finish_reason", finish);
check(usage && usage.completion_tokens === chat.usage.completion_tokens, "streamed usage chunk", usage);

const prompt = "Once upon a time, there was a little girl named Lily. She loved to play outside.";
const first = await client.completions.create({ model, prompt, max_tokens: 12, temperature: 0 });
check(first.object === "text_completion" && first.choices[0].text.length > 0, "completion", first);
check(first.usage.prompt_tokens > 10, "completion usage", first.usage);

const second = await client.completions.create({
  model,
  prompt: prompt + first.choices[0].text + " One day",
  max_tokens: 12,
  temperature: 0,
});
const cached = second.usage.prompt_tokens_details?.cached_tokens ?? 0;
check(cached > 0, "an extending request reports cached_tokens > 0", second.usage);

const completionStream = await client.completions.create({ model, prompt, max_tokens: 12, temperature: 0, stream: true });
let streamedText = "";
for await (const chunk of completionStream) for (const c of chunk.choices) streamedText += c.text;
check(streamedText === first.choices[0].text, "streamed completion equals the non-streamed one", { streamedText, whole: first.choices[0].text });

const structured = await client.chat.completions.create({
  model,
  messages,
  max_tokens: 200,
  seed: 7,
  response_format: {
    type: "json_schema",
    json_schema: {
      name: "person",
      strict: true,
      schema: {
        type: "object",
        properties: { name: { type: "string", maxLength: 12 }, age: { type: "integer" } },
        required: ["name", "age"],
        additionalProperties: false,
      },
    },
  },
});
let doc = null;
try {
  doc = JSON.parse(structured.choices[0].message.content);
} catch (e) {
  doc = null;
}
check(doc !== null && typeof doc.name === "string" && Number.isInteger(doc.age) && Object.keys(doc).length === 2,
  "response_format json_schema (strict) gives a document of the schema", structured.choices[0]);

const tools = [{
  type: "function",
  function: {
    name: "get_time",
    description: "The time in a zone",
    parameters: { type: "object", properties: { zone: { enum: ["utc", "local"] } }, required: ["zone"], additionalProperties: false },
  },
}];
const toolChat = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "What time is it?" }],
  max_tokens: 100,
  seed: 3,
  tools,
  tool_choice: "required",
});
const call = toolChat.choices[0].message.tool_calls?.[0];
let callArgs = null;
try {
  callArgs = JSON.parse(call.function.arguments);
} catch (e) {
  callArgs = null;
}
check(call && call.id && call.type === "function" && call.function.name === "get_time" && callArgs &&
  (callArgs.zone === "utc" || callArgs.zone === "local") && toolChat.choices[0].finish_reason === "tool_calls",
  "tool_choice required gives a call whose arguments validate", toolChat.choices[0]);

const toolStream = await client.chat.completions.create({
  model,
  messages: [{ role: "user", content: "What time is it?" }],
  max_tokens: 100,
  seed: 3,
  tools,
  tool_choice: "required",
  stream: true,
});
const parts = {};
for await (const chunk of toolStream) {
  for (const c of chunk.choices) {
    for (const tc of c.delta?.tool_calls ?? []) {
      const p = (parts[tc.index] ??= { name: "", arguments: "" });
      p.name += tc.function?.name ?? "";
      p.arguments += tc.function?.arguments ?? "";
    }
  }
}
check(parts[0] && parts[0].name === call.function.name && parts[0].arguments === call.function.arguments,
  "streamed tool-call deltas reassemble into the same call", parts);

try {
  await client.completions.create({ model, prompt, max_tokens: 12, temperature: 9 });
  check(false, "a bad request throws", "no error");
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.status === 400 && String(e.message).includes("temperature"), "a bad request throws BadRequestError naming the field", String(e));
}

// Embeddings: the client's default asks for base64 and decodes it; float and an explicit base64 must agree.
const texts = ["Once upon a time", "Lily and Ben went to the park."];
const embFloat = await client.embeddings.create({ model, input: texts, encoding_format: "float" });
check(embFloat.object === "list" && embFloat.data.length === 2 && embFloat.data[1].index === 1, "embeddings.create shape", embFloat.data.map((d) => d.index));
const vec = embFloat.data[0].embedding;
const norm = Math.sqrt(vec.reduce((a, x) => a + x * x, 0));
check(Array.isArray(vec) && vec.length > 0 && Math.abs(norm - 1) < 1e-4, "float embeddings are unit vectors", { length: vec.length, norm });
check(embFloat.usage.prompt_tokens > 0 && embFloat.usage.total_tokens === embFloat.usage.prompt_tokens, "embeddings usage", embFloat.usage);
const embDefault = await client.embeddings.create({ model, input: texts });
check(embDefault.data.every((d, i) => d.embedding.length === vec.length && d.embedding.every((x, k) => x === embFloat.data[i].embedding[k])),
  "default (base64, decoded by the client) embeddings equal float ones", embDefault.data[0].embedding.slice(0, 4));
const embB64 = await client.embeddings.create({ model, input: texts[0], encoding_format: "base64" });
const raw = Buffer.from(embB64.data[0].embedding, "base64");
const decoded = Array.from(new Float32Array(raw.buffer, raw.byteOffset, raw.length / 4));
check(decoded.length === vec.length && decoded.every((x, k) => x === vec[k]), "explicit base64 embeddings decode to the float ones", decoded.slice(0, 4));

const wrongKey = new OpenAI({ baseURL: process.env.LLAMA_CRAB_BASE_URL, apiKey: "wrong", maxRetries: 0 });
try {
  await wrongKey.models.list();
  check(false, "a wrong key is refused", "no error");
} catch (e) {
  check(e instanceof OpenAI.AuthenticationError && e.status === 401, "a wrong key throws AuthenticationError", String(e));
}
console.log("all checks passed");
