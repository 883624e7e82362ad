export { AssignmentBuilder, compareStrings, type AssignorMember, type PartitionAssignor } from './assignor.js';
export { RangeAssignor } from './range.js';
export { RoundRobinAssignor } from './round-robin.js';
