import { randomInt } from 'node:crypto';

const ADJECTIVES = [
  'snowy',
  'quiet',
  'bold',
  'calm',
  'brave',
  'sunny',
  'misty',
  'rapid',
  'silent',
  'amber',
  'crimson',
  'golden',
  'hidden',
  'lucky',
  'proud',
  'swift',
  'gentle',
  'wild',
  'frosty',
  'shiny',
  'dusty',
  'polar',
  'rustic',
  'cosmic',
];
const NOUNS = [
  'pine',
  'river',
  'falcon',
  'harbor',
  'meadow',
  'comet',
  'cedar',
  'canyon',
  'glacier',
  'otter',
  'lantern',
  'breeze',
  'willow',
  'summit',
  'tide',
  'ember',
  'maple',
  'raven',
  'delta',
  'reef',
  'aurora',
  'boulder',
  'heron',
  'lynx',
];

/** A friendly device name such as "snowy-pine"; not unique, users rename devices as they like. */
export function friendlyName(): string {
  return `${ADJECTIVES[randomInt(ADJECTIVES.length)]}-${NOUNS[randomInt(NOUNS.length)]}`;
}
