// Topic filter matching (MQTT 3.1.1 section 4.7, MQTT 5.0 section 4.7). Called once per message per subscription
// on the client side, so it walks both strings by index instead of splitting them.

const PLUS = 0x2b; // '+'
const HASH = 0x23; // '#'
const SLASH = 0x2f; // '/'
const DOLLAR = 0x24; // '$'

/**
 * Whether `topic` (a topic name) matches `filter` (a valid topic filter, see validateTopicFilter).
 *
 * `+` matches exactly one level, `#` the remaining levels including none (`a/#` matches `a`), empty levels are levels
 * (`/a` has two), and a topic starting with `$` is not matched by a filter whose first level is `+` or `#`
 * (MQTT 5.0 4.7.2). A `$share/{group}/` prefix is not interpreted: strip it with parseSharedSubscription first.
 * Wildcards count only when they fill a whole level; anything else in an invalid filter is compared literally.
 */
export function topicMatches(filter: string, topic: string): boolean {
  const fl = filter.length;
  const tl = topic.length;
  if (fl === 0) return false;
  if (tl > 0 && topic.charCodeAt(0) === DOLLAR) {
    const c = filter.charCodeAt(0);
    if ((c === PLUS || c === HASH) && (fl === 1 || (c === PLUS && filter.charCodeAt(1) === SLASH))) return false;
  }
  let f = 0;
  let t = 0;
  // Invariant at the top of the loop: f and t are at the start of a level.
  for (;;) {
    const c = filter.charCodeAt(f); // NaN at the end: an empty last level
    if (c === HASH && f + 1 === fl) return true;
    if (c === PLUS && (f + 1 === fl || filter.charCodeAt(f + 1) === SLASH)) {
      f++;
      while (t < tl && topic.charCodeAt(t) !== SLASH) t++;
    } else {
      while (f < fl) {
        const fc = filter.charCodeAt(f);
        if (fc === SLASH) break;
        if (t === tl || topic.charCodeAt(t) !== fc) return false;
        f++;
        t++;
      }
      if (t < tl && topic.charCodeAt(t) !== SLASH) return false;
    }
    // Both sit on a '/' or at their end.
    if (f === fl) return t === tl;
    // The topic ran out first: only a trailing "/#" still matches (it includes the parent level).
    if (t === tl) return f + 2 === fl && filter.charCodeAt(f + 1) === HASH;
    f++;
    t++;
  }
}
