/** Figures of one crash test; see scripts/crash-test.mjs. */
export interface CrashTestFigures {
  readonly events: number;
  readonly keys: number;
  readonly kills: number;
  readonly resumes: number;
  readonly runsFinishedBeforeKill: number;
  readonly seconds: number;
  readonly uninterruptedSeconds: number;
  readonly outputLines: number;
  readonly repeatedPredictions: number;
  readonly lost: number;
  readonly doubleStepped: number;
  readonly referenceSeqGaps: number;
  readonly finalStateEqual: boolean;
  readonly keysWithDifferentState: number;
  readonly dir?: string;
}

export interface CrashTestOptions {
  readonly events?: number;
  readonly keys?: number;
  readonly kills?: number;
  readonly seed?: number;
  readonly model?: string;
  readonly batch?: number;
  readonly keep?: boolean;
  readonly log?: (line: string) => void;
}

export const DEFAULT_MODEL: string;
export function runCrashTest(options?: CrashTestOptions): Promise<CrashTestFigures>;
