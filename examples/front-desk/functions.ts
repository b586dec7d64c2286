/**
 * The front desk: the module the README's "Scaling out on Apache Flink StateFun" section serves
 * with `weft serve`, and the one test/interop/flink.test.ts runs on a real StateFun 3.3 runtime.
 * Two functions that use every part of the StateFun model: state across messages, a function
 * replying to another function's message, delayed messages with cancellation, egress records and
 * state with a time-to-live.
 *
 * - `front-desk/guest` (one per guest id) takes `{ op: 'arrive', name, callbackMs? }`,
 *   `{ op: 'leave' }` and `{ op: 'recall' }`. Arriving asks the greeter for a greeting and, with
 *   `callbackMs`, books a callback (a delayed message to itself) that leaving cancels. The
 *   greeter's reply is kept for 2 s (`expireAfterWrite`); `recall` reports what is left of it.
 * - `front-desk/greeter` counts visits per id and replies with a greeting.
 *
 * Every step is a record on the egress `front-desk/log`.
 */
import { defineModule, type } from 'weft';

type GuestMessage = { op: 'arrive'; name: string; callbackMs?: number } | { op: 'leave' } | { op: 'recall' } | { op: 'callback' };

export default defineModule({
  functions: {
    'front-desk/guest': {
      state: { greeting: { type: type.string(), expireAfterWrite: 2_000 } },
      fn(ctx, msg) {
        const id = ctx.self.id;
        if (ctx.caller?.type === 'front-desk/greeter') {
          // The greeter's reply to this guest's arrival.
          const greeting = msg.as(type.string());
          ctx.state.greeting = greeting;
          ctx.egress('front-desk/log', { event: 'greeted', id, greeting });
          return;
        }
        const m = msg.value as GuestMessage;
        const token = `callback:${id}`;
        switch (m.op) {
          case 'arrive':
            ctx.send({ type: 'front-desk/greeter', id }, { name: m.name });
            if (m.callbackMs !== undefined) ctx.sendAfter(m.callbackMs, ctx.self, { op: 'callback' }, { cancellationToken: token });
            break;
          case 'leave':
            ctx.cancelDelayed(token);
            ctx.egress('front-desk/log', { event: 'left', id });
            break;
          case 'callback':
            ctx.egress('front-desk/log', { event: 'callback', id });
            break;
          case 'recall':
            ctx.egress('front-desk/log', { event: 'recall', id, greeting: ctx.state.greeting ?? null });
            break;
        }
      },
    },
    'front-desk/greeter': {
      state: { visits: type.int() },
      fn(ctx, msg) {
        const { name } = msg.value as { name: string };
        const visits = (ctx.state.visits ?? 0) + 1;
        ctx.state.visits = visits;
        ctx.reply(visits === 1 ? `Hello, ${name}!` : `Hello again, ${name}! That makes ${visits} visits.`, { type: type.string() });
      },
    },
  },
  egresses: ['front-desk/log'],
});
