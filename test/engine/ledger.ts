import type { Weft } from '../../src/index.js';

/**
 * What the xfer fixture's accounts hold: the sum of balances, and how many times each transfer id
 * was debited and credited (exactly once each, if nothing was lost or applied twice).
 */
export async function ledger(weft: Weft, accounts: number): Promise<{ total: number; debits: Map<number, number>; credits: Map<number, number> }> {
  const debits = new Map<number, number>();
  const credits = new Map<number, number>();
  let total = 0;
  for (let a = 0; a < accounts; a++) {
    const s = await weft.query({ type: 'xfer/account', id: `x-${a}` });
    total += (s?.balance as number | undefined) ?? 0;
    for (const id of (s?.debited as number[] | undefined) ?? []) debits.set(id, (debits.get(id) ?? 0) + 1);
    for (const id of (s?.credited as number[] | undefined) ?? []) credits.set(id, (credits.get(id) ?? 0) + 1);
  }
  return { total, debits, credits };
}
