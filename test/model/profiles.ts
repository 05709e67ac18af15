// What the model run may try against each broker. Ours is held to everything; Mosquitto 2.0 (Debian's, the
// reference peer) is run too, to show that the model itself is right, with the places where it leaves the
// specifications listed here, each found by the model run and checked by hand.
import type { Profile } from './reference.js';

export const OURS: Profile = {
  name: 'otalink',
  sharedPrefersOnline: true,
  willOnTakeover311: true,
  takeoverMayResume: true,
  retainedForSharedSubscriptions: false,
  malformedVariants: [0, 1, 2, 3],
  overlapping: 'merged',
  disconnectOnTakeover: true,
  willOnErrorDisconnect: true,
  resubscribeMayChangeOptions: true,
  maximumPacketSizes: true,
  honoursReceiveMaximum: true,
};

export const MOSQUITTO_2_0: Profile = {
  name: 'mosquitto 2.0',
  // Picks the next member round-robin, connected or not: a message may wait in an offline member's queue.
  sharedPrefersOnline: false,
  willOnTakeover311: true,
  // With Clean Start 0 the old connection's will is not published, and the will of a clean (3.1.1) session taken
  // over reaches the new connection through the old session's subscriptions.
  takeoverMayResume: false,
  // Sends retained messages to a new shared subscription (MQTT 5.0 section 4.8.2 says not to).
  retainedForSharedSubscriptions: true,
  // A second CONNECT closes the connection without its will and ends the session.
  malformedVariants: [0, 1, 2],
  // Overlapping subscriptions sometimes give one copy per subscription, sometimes one in all; a filter repeated in
  // one SUBSCRIBE becomes two subscriptions (two copies of each message).
  overlapping: 'avoid',
  // The connection taken over is closed without DISCONNECT 0x8E.
  disconnectOnTakeover: false,
  // DISCONNECT with an error reason (0x80) discards the will, as 0x00 does ([MQTT-3.1.2-8] keeps it).
  willOnErrorDisconnect: false,
  // A SUBSCRIBE repeating a filter keeps the old No Local and Retain As Published ([MQTT-3.8.4-3] says replace);
  // one made while the client holds its acknowledgements back led to duplicate deliveries past its Receive Maximum.
  resubscribeMayChangeOptions: false,
  // A message too large for the client's Maximum Packet Size stays in its queue and blocks the ones behind it.
  maximumPacketSizes: false,
  // Goes past the client's Receive Maximum: with the retained messages for a SUBSCRIBE, and with the copies of one
  // message for a plain and a shared subscription of the same client.
  honoursReceiveMaximum: false,
};
