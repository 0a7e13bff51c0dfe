/** The tests' tokenizer folders: the shared writers with the small T5 vocabulary the tokenizer tests assert ids of. */
import { writeClipTokenizer, writeT5Tokenizer as writeT5, type UnigramPiece } from '../../src/builtin/tokenizer-files.js';

export { writeClipTokenizer };

const TEST_PIECES: UnigramPiece[] = [
  ['▁', -2],
  ['▁a', -3],
  ['▁cat', -4],
  ['▁the', -4],
  ['s', -5],
  ['c', -6],
  ['a', -6],
  ['t', -6],
  ['h', -6],
  ['e', -6],
  [',', -5],
  ['!', -5],
  ['▁,', -7],
];

export function writeT5Tokenizer(folder: string): string {
  return writeT5(folder, TEST_PIECES);
}
