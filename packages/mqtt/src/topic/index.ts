// Topic names and filters: validation, matching one filter, and the broker's subscription index.

export { topicMatches } from './match.js';
export type { SubscriptionVisitor } from './trie.js';
export { SubscriptionTrie } from './trie.js';
export type { SharedSubscription } from './validate.js';
export {
  isValidTopicFilter,
  isValidTopicName,
  parseSharedSubscription,
  topicFilterProblem,
  topicNameProblem,
  validateTopicFilter,
  validateTopicName,
} from './validate.js';
