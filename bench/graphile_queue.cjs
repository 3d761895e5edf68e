// graphile-worker's side of bench/graphile_queue.py; run by it, not by hand.
//
//   node graphile_queue.cjs migrate
//   node graphile_queue.cjs enqueue <jobs> <batch>     prints {"enqueue_s": ...}
//   node graphile_queue.cjs work <concurrency> <local queue size> <complete batch delay ms>
//
// DATABASE_URL names the database; GRAPHILE_WORKER_MODULE the installed graphile-worker package.
// `work` runs no-op jobs until SIGTERM, then stops gracefully.
"use strict";

const worker = require(process.env.GRAPHILE_WORKER_MODULE);

const connectionString = process.env.DATABASE_URL;
const quiet = () => () => {};
const logger = new worker.Logger(quiet);

async function migrate() {
  await worker.runMigrations({ connectionString, logger });
}

async function enqueue(jobs, batch) {
  const utils = await worker.makeWorkerUtils({ connectionString, logger });
  try {
    const started = process.hrtime.bigint();
    for (let offset = 0; offset < jobs; offset += batch) {
      const specs = [];
      for (let n = offset; n < Math.min(offset + batch, jobs); n++) {
        specs.push({ identifier: "noop", payload: {} });
      }
      await utils.addJobs(specs);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    console.log(JSON.stringify({ enqueue_s: seconds }));
  } finally {
    await utils.release();
  }
}

async function work(concurrency, localQueueSize, completeBatchDelay) {
  const runner = await worker.run({
    connectionString,
    logger,
    concurrency,
    noHandleSignals: true,
    // Its fastest documented settings: jobs fetched in batches into a local queue, completes
    // and failures batched.
    preset: {
      worker: {
        maxPoolSize: Math.max(10, concurrency + 2),
        localQueue: { size: localQueueSize },
        completeJobBatchDelay: completeBatchDelay,
        failJobBatchDelay: completeBatchDelay,
      },
    },
    taskList: { noop: async () => {} },
  });
  console.log("graphile-worker running");
  const stop = async () => {
    await runner.stop();
  };
  process.once("SIGTERM", stop);
  await runner.promise;
}

async function main() {
  const [command, ...args] = process.argv.slice(2);
  const numbers = args.map(Number);
  if (command === "migrate") {
    await migrate();
  } else if (command === "enqueue") {
    await enqueue(numbers[0], numbers[1]);
  } else if (command === "work") {
    await work(numbers[0], numbers[1], numbers[2]);
  } else {
    throw new Error(`unknown command ${command}`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
