// Shared by the polls' console panel and viewer card.

/** Whole percentages of `votes` that add up to 100 (largest remainders), all 0 without votes. */
export function shares(votes, total) {
  if (!total) return votes.map(() => 0);
  const exact = votes.map((v) => (100 * (v || 0)) / total);
  const whole = exact.map(Math.floor);
  let left = 100 - whole.reduce((a, b) => a + b, 0);
  const order = exact.map((x, i) => [x - whole[i], i]).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
  for (const [, i] of order) {
    if (left <= 0) break;
    whole[i] += 1;
    left -= 1;
  }
  return whole;
}
