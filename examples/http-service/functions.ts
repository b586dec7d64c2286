/**
 * The service's functions: one bank account per id. Amounts are integers (cents); an account
 * never goes below zero. One invocation at a time per account, so a withdrawal can check the
 * balance and debit it without a lock or a transaction of its own.
 */
import { defineModule, type } from 'weft';

/** What the HTTP layer sends an account. */
export type AccountOp = { op: 'deposit'; amount: number } | { op: 'withdraw'; amount: number };

/** An account's answer to an {@link AccountOp}. */
export type AccountReply = { ok: true; balance: number } | { ok: false; balance: number; error: 'insufficient funds' | 'balance limit exceeded' };

export const ACCOUNT = 'bank/account';

export default defineModule({
  functions: {
    [ACCOUNT]: {
      state: {
        balance: type.long(),
        /** Deposits and withdrawals applied so far. */
        operations: type.int(),
      },
      fn(ctx, msg) {
        const m = msg.value as AccountOp;
        const balance = ctx.state.balance ?? 0;
        const next = m.op === 'deposit' ? balance + m.amount : balance - m.amount;
        if (next < 0) {
          ctx.reply({ ok: false, balance, error: 'insufficient funds' } satisfies AccountReply);
          return;
        }
        // type.long() carries safe integers only: refuse rather than fail the invocation.
        if (next > Number.MAX_SAFE_INTEGER) {
          ctx.reply({ ok: false, balance, error: 'balance limit exceeded' } satisfies AccountReply);
          return;
        }
        ctx.state.balance = next;
        ctx.state.operations = (ctx.state.operations ?? 0) + 1;
        ctx.reply({ ok: true, balance: next } satisfies AccountReply);
      },
    },
  },
});
