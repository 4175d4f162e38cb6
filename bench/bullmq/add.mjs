// BullMQ's `add` at a fixed concurrency for a while: the anchor for our submit (issue 9).
// Prints jobs added a second. Env: REDIS_URL, QUEUE, CONCURRENCY, SECONDS.
import { Queue } from "bullmq";

const url = new URL(process.env.REDIS_URL ?? "redis://127.0.0.1:6379");
const queue = new Queue(process.env.QUEUE ?? "bench", {
  connection: { host: url.hostname, port: Number(url.port || 6379) },
});
const concurrency = Number(process.env.CONCURRENCY ?? 32);
const until = Date.now() + 1000 * Number(process.env.SECONDS ?? 5);
let added = 0;
const started = Date.now();
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (Date.now() < until) {
      await queue.add("menu", { days: 1, owner: "bench" });
      added += 1;
    }
  }),
);
console.log((added / ((Date.now() - started) / 1000)).toFixed(0));
await queue.obliterate({ force: true });
await queue.close();
