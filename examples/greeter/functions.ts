/**
 * The greeter: one function, `example/greeter`, with one piece of state per id (how many times
 * that id was greeted). Every greeting is the reply to the caller and a record on an egress.
 */
import { defineModule, type } from 'weft';

export default defineModule({
  functions: {
    'example/greeter': {
      state: { visits: type.int() },
      fn(ctx, msg) {
        const { name } = msg.value as { name: string };
        // `ctx.state.visits` is `number | undefined`: state starts empty for every new id.
        const visits = (ctx.state.visits ?? 0) + 1;
        ctx.state.visits = visits;
        const greeting = visits === 1 ? `Hello, ${name}!` : `Hello again, ${name}! That makes ${visits} visits.`;
        ctx.reply(greeting);
        ctx.egress('example/greetings', { id: ctx.self.id, visits, greeting });
      },
    },
  },
  egresses: ['example/greetings'],
});
